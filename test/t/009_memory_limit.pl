# The indexes' memory is bounded by engram.memory_limit. A space that cannot
# grow is quarantined instead of stalling ingest: its index is given up and
# its memory freed, the server log says which space and what to do (once),
# engram.spaces shows its state and why, and recalls and commits into it are
# refused with SQLSTATE 55000, while the other space keeps taking commits and
# answering. Dropping the other space frees room, and engram.rebuild()
# rebuilds the quarantined index from the table: every index then holds
# exactly the committed rows again.
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
my @workers = worker_pids($node);

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
	if ($ret == 0) { $accepted++; ok(wait_stored($node), "batch $i is consumed"); next; }
	$refused++;
	$error = $err;
	last;
}
cmp_ok($accepted, '>', 0, "batches were accepted until memory ran out ($accepted)");
is($refused, 1, 'then a commit into the full space was refused');
like($error, qr/ERROR:  55000: space "big" is quarantined/, 'with SQLSTATE 55000 naming the space');
like($error, qr/DETAIL:  Its index was given up: engram\.memory_limit was exhausted at [\d,]+ observations/,
	'the detail says why');
like($error, qr/HINT:  Raise engram\.memory_limit .*drop unused spaces, then run engram\.rebuild\(\)/,
	'the hint names the setting and the way out');
ok($node->wait_for_log(qr/WARNING:  space "big" is quarantined/), 'the server log names the quarantined space');

my ($state, $detail) = split /\|/,
  $node->safe_psql('postgres', "SELECT state, state_detail FROM engram.spaces WHERE name = 'big'");
is($state, 'quarantined', 'engram.spaces shows the space quarantined');
like($detail, qr/^quarantined: engram\.memory_limit was exhausted at [\d,]+ observations \([\d.]+ of 1[56]\.\d MB in use\)/,
	'with the reason');
is($node->safe_psql('postgres', "SELECT state FROM engram.spaces WHERE name = 'spare'"), 'ready',
	'the other space is ready');

# The other space keeps flowing; the quarantined one refuses recalls.
$node->safe_psql('postgres', batch('spare', 10, 5));
ok(wait_stored($node), 'the spare space takes more commits');
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.recall('spare', array_fill(0.5::real, ARRAY[$dim]), 5)"),
	'5', 'recall keeps answering in the other space');
my ($ret, $out, $err) = $node->psql('postgres', "SELECT * FROM engram.recall('big', array_fill(0.5::real, ARRAY[$dim]))",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  55000: space "big" is quarantined/, 'recall in the quarantined space is refused');
isnt($node->safe_psql('postgres', 'SELECT level FROM engram.pressure()'), 'overloaded', 'pressure is not overloaded');
my $warnings = () = slurp_file($node->logfile) =~ /WARNING:  space "big" is quarantined/g;
is($warnings, 1, 'the quarantine is logged once');
($ret, $out, $err) = $node->psql('postgres', "SELECT engram.rebuild('big')", extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  55000: space "big" is quarantined/, 'a rebuild without room fails and says why');

# Freeing memory lets the rebuild in: every committed row of 'big' is indexed again.
$node->safe_psql('postgres', "SELECT engram.drop_space('spare')");
ok(wait_stored($node), 'the drop is done');
$node->safe_psql('postgres', "SELECT engram.rebuild('big')");
is($node->safe_psql('postgres', "SELECT state || coalesce(state_detail, '') FROM engram.spaces WHERE name = 'big'"),
	'ready', 'the rebuilt space is ready');
check_converged($node, 'after the rebuild');
ok($node->safe_psql('postgres', "SELECT engram.wait_linked('big', NULL, 60000)") eq 't', 'and linked');
$node->safe_psql('postgres', batch('big', 10, 200));
ok(wait_stored($node), 'the rebuilt space takes commits again');
is($node->safe_psql('postgres', "SELECT count(*) FROM engram.recall('big', array_fill(0.5::real, ARRAY[$dim]), 5)"),
	'5', 'and answers recalls');
is_deeply([ worker_pids($node) ], \@workers, 'no worker restarted');
unlike(slurp_file($node->logfile), qr/background worker "engram worker" \(PID \d+\) exited/, 'no worker exited');

done_testing();
