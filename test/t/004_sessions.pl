# Exactly-once delivery through a streaming session. A client streams 10,000
# numbered observations; at random points it drops its connection without
# waiting for the acknowledgement of the observation it just sent, reconnects
# and resends from the last number it had sent. Afterwards exactly 10,000 rows
# exist, in sequence order, and a deliberate gap is refused with the expected
# number in the error detail.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = engram_node('sessions');
$node->safe_psql('postgres', "SELECT engram.create_space('seq', 4, 'l2')");
my $session = $node->safe_psql('postgres', "SELECT engram.open_session('seq')");

srand(4242);
my $total = 10_000;
my ($drops, $psql) = (0, undef);
my $seq = 1;
while ($seq <= $total)
{
	$psql //= $node->background_psql('postgres', on_error_stop => 1);
	my $sql = "SELECT engram.observe('seq', '{$seq,1,2,3}', session => '$session', seq => $seq);";
	if (rand() < 0.01)
	{
		# Send, then drop the connection before reading the answer.
		$psql->{stdin} .= "$sql\n";
		$psql->{run}->pump_nb;
		$psql->{run}->kill_kill;
		undef $psql;
		$drops++;
		next;    # resend the same number on a fresh connection
	}
	$psql->query_safe($sql);
	$seq++;
}
$psql->quit;
cmp_ok($drops, '>', 20, "the client dropped its connection $drops times");

is($node->safe_psql('postgres', "SELECT count(*) FROM engram.observations WHERE session_id = '$session'"),
	$total, "exactly $total rows exist for the session");
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM (SELECT seq, row_number() OVER (ORDER BY id) AS n FROM engram.observations
		  WHERE session_id = '$session') t WHERE seq <> n"),
	0,
	'rows are stored in sequence order, 1 to 10,000');
is($node->safe_psql('postgres', "SELECT last_seq FROM engram.sessions WHERE session_id = '$session'"),
	$total, 'the session position is the last number');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM engram.observations WHERE session_id = '$session' AND embedding[1] <> seq"),
	0, 'each row holds the observation sent with its number');

my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT engram.observe('seq', '{0,0,0,0}', session => '$session', seq => " . ($total + 2) . ')');
isnt($ret, 0, 'a gap is refused');
like($err, qr/sequence gap in session/, 'the error names the gap');
like($err, qr/DETAIL:  Expected sequence number 10001, got 10002\./, 'the detail gives the expected number');

check_converged($node, 'after the session');

done_testing();
