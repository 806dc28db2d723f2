# Four clients observe 100,000 rows in total through observe, observe_batch,
# INSERT and COPY at once, rolling back some transactions and some
# savepoints. Afterwards every space stores exactly its committed rows, and
# the latency histograms of engram.metrics() have timed each of them once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = engram_node('ingest');
my $dim = 16;
$node->safe_psql('postgres', "SELECT engram.create_space('sp' || g, $dim, 'l2') FROM generate_series(1, 2) g");
my %space_id = map { ("sp$_" => $_) } 1 .. 2;

srand(20261121);
my $rows_per_client = 25_000;

sub vec_text { return '{' . join(',', map { sprintf('%.3f', rand()) } 1 .. $dim) . '}'; }

# One client's script: transactions of each kind, some rolled back, some with
# a rolled back savepoint. Rows meant to vanish carry content 'aborted'.
sub client_script
{
	my ($client) = @_;
	my $sql = "\\set ON_ERROR_STOP 1\n";
	my $written = 0;
	my $kind = 0;
	while ($written < $rows_per_client)
	{
		my $space = 'sp' . (1 + int(rand(2)));
		my $n = 1 + int(rand(40));
		my $fate = rand();
		my $body = '';
		$kind = ($kind + 1) % 4;
		for my $i (1 .. $n)
		{
			if ($kind == 0)
			{
				$body .= "SELECT engram.observe('$space', '" . vec_text() . "', 'c$client');\n";
			}
			elsif ($kind == 2)
			{
				$body .= "INSERT INTO engram.observations (space_id, embedding, content) VALUES ($space_id{$space}, '"
				  . vec_text() . "', 'c$client');\n";
			}
		}
		if ($kind == 1)
		{
			$body = "SELECT engram.observe_batch('$space', '{" . join(',', map { vec_text() } 1 .. $n)
			  . "}', ARRAY[" . join(',', map { "'c$client'" } 1 .. $n) . "]);\n";
		}
		elsif ($kind == 3)
		{
			$body = "COPY engram.observations (space_id, embedding, content) FROM stdin;\n"
			  . join('', map { "$space_id{$space}\t" . vec_text() . "\tc$client\n" } 1 .. $n) . "\\.\n";
		}
		if ($fate < 0.15)
		{
			(my $aborted = $body) =~ s/'c$client'/'aborted'/g;
			$aborted =~ s/\tc$client\n/\taborted\n/g;
			$sql .= "BEGIN;\n$aborted" . "ROLLBACK;\n";
		}
		elsif ($fate < 0.30)
		{
			(my $aborted = $body) =~ s/'c$client'/'aborted'/g;
			$aborted =~ s/\tc$client\n/\taborted\n/g;
			$sql .= "BEGIN;\n$body" . "SAVEPOINT sp;\n$aborted" . "ROLLBACK TO sp;\nCOMMIT;\n";
			$written += $n;
		}
		else
		{
			$sql .= "BEGIN;\n$body" . "COMMIT;\n";
			$written += $n;
		}
	}
	return ($sql, $written);
}

# The workers load the installation first, and rows committed meanwhile are
# read back from the table, without their commit times. A row observed and
# stored before the clients start shows the load is over; the latency
# histograms are counted from there.
$node->safe_psql('postgres',
	"SELECT engram.observe('sp1', array_fill(0.5::real, ARRAY[$dim]), 'warm-up')");
ok(wait_stored($node), 'the workers have loaded and stored a first row');
is($node->safe_psql('postgres', "SELECT engram.wait_linked('sp1', NULL, 300000)"), 't', 'and linked it');
my $histogram_counts = q{
	SELECT (regexp_match(m, '\nengram_streaming_observation_latency_seconds_count (\d+)'))[1],
		   (regexp_match(m, '\nengram_observation_stored_latency_seconds_count (\d+)'))[1],
		   (SELECT sum(linked) FROM engram.spaces)
	FROM engram.metrics() m};
my ($linked_count_before, $stored_count_before) = split /\|/, $node->safe_psql('postgres', $histogram_counts);

my @harnesses;
my $expected = 0;
for my $client (1 .. 4)
{
	my ($sql, $written) = client_script($client);
	$expected += $written;
	push @harnesses, [ start_psql_script($node, $sql) ];
}
for my $h (@harnesses)
{
	my ($harness, $err) = @$h;
	ok($harness->finish, 'client finished without error') or diag($$err);
}

is($node->safe_psql('postgres', "SELECT count(*) FROM engram.observations WHERE content LIKE 'c%'"),
	$expected, "all $expected committed rows are in the table");
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.observations WHERE content = 'aborted'"),
	0, 'no rolled back row is in the table');
cmp_ok($expected, '>=', 100_000, 'the clients wrote at least 100,000 rows');
check_converged($node, 'after concurrent ingest');

# Every row the clients committed was timed from its commit until stored,
# and until linked once every space is linked.
for my $space (sort keys %space_id)
{
	is($node->safe_psql('postgres', "SELECT engram.wait_linked('$space', NULL, 300000)"),
		't', "space $space is linked");
}
my ($linked_count, $stored_count, $linked) = split /\|/, $node->safe_psql('postgres', $histogram_counts);
is($linked, $expected + 1, "every committed row is linked, the warm-up row too");
is($linked_count - $linked_count_before, $expected,
	"the linked latency histogram counts every row the clients committed once");
is($stored_count - $stored_count_before, $expected,
	"the stored latency histogram counts every row the clients committed once");

done_testing();
