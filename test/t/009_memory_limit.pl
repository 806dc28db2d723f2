# The indexes' memory is bounded by engram.memory_limit. A space that cannot
# grow stalls ingest instead of failing it: its records wait in the ring, the
# server log says which space and what to do, and backpressure refuses new
# commits with an error that names engram.memory_limit, while recall keeps
# answering. Dropping another space frees its memory, the waiting records are
# stored, and every index holds exactly the committed rows again.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = engram_node('memory', 'engram.memory_limit' => "'16MB'", 'engram.ring_size' => "'8MB'");
my $dim = 768;
$node->safe_psql('postgres', "SELECT engram.create_space('spare', $dim, 'l2'), engram.create_space('big', $dim, 'l2')");

sub batch
{
	my ($space, $rows, $seed) = @_;
	return "SELECT engram.observe_batch('$space', (SELECT array_agg(array_fill((g * 0.001 + $seed)::real, ARRAY[$dim])) "
	  . "FROM generate_series(1, $rows) g))";
}

# 'spare' takes a good share of the 16 MB, then 'big' grows until it cannot.
$node->safe_psql('postgres', batch('spare', 1500, 0));
ok(wait_stored($node), 'the spare space is stored');
my ($accepted, $refused, $error) = (0, 0, '');
for my $i (1 .. 100)
{
	my ($ret, $out, $err) = $node->psql('postgres', "SET engram.overload_policy = 'error'; " . batch('big', 100, $i),
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	if ($ret == 0) { $accepted++; next; }
	$refused++;
	$error = $err;
	last;
}
cmp_ok($accepted, '>', 0, "batches were accepted until memory ran out ($accepted)");
is($refused, 1, 'then a commit was refused');
like($error, qr/ERROR:  53E01: engram ingest pipeline is overloaded/, 'with SQLSTATE 53E01');
like($error, qr/DETAIL:  The indexes use \d+% of engram\.memory_limit/, 'the detail says the indexes fill their memory');
like($error, qr/HINT:  Raise engram\.memory_limit .*drop spaces/, 'the hint names the setting and the way out');
ok($node->wait_for_log(qr/WARNING:  space \d+ cannot grow: engram\.memory_limit is exhausted/),
	'the server log names the space that cannot grow');
is($node->safe_psql('postgres', 'SELECT level FROM engram.pressure()'), 'overloaded', 'pressure reads overloaded');

# Recall still answers, from what is stored.
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.recall('spare', array_fill(0.5::real, ARRAY[$dim]), 5)"),
	'5', 'recall keeps answering while ingest is stalled');
my ($committed, $stored) = split /\|/, $node->safe_psql('postgres',
	"SELECT (SELECT count(*) FROM engram.observations WHERE space_id = engram._space_id('big')), observations
	 FROM engram.spaces WHERE name = 'big'");
cmp_ok($stored, '<', $committed, "committed rows of 'big' wait in the ring ($stored of $committed stored)");

# Freeing memory lets the waiting records in.
$node->safe_psql('postgres', "SELECT engram.drop_space('spare')");
check_converged($node, 'after dropping the spare space');
is($node->safe_psql('postgres', "SELECT observations FROM engram.spaces WHERE name = 'big'"),
	$committed, "every committed row of 'big' is stored");
ok($node->safe_psql('postgres', "SELECT engram.wait_linked('big', NULL, 60000)") eq 't', 'and linked');
isnt($node->safe_psql('postgres', 'SELECT level FROM engram.pressure()'), 'overloaded', 'pressure has come down');

done_testing();
