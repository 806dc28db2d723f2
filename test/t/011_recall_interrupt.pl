# A recall over a large unlinked tail can be cancelled. With linking paused
# (engram.pause_linking), a space of 110,000 vectors of 2,000 dimensions (880
# MB) is all tail, so every recall scans it exactly. Under statement_timeout =
# 50ms such a recall fails with SQLSTATE 57014 well before a full scan would
# have ended; pg_cancel_backend stops one the same way. Nothing stays pinned:
# drop_space of the space then completes, and the workers free its index and
# keep storing other spaces' commits. A session connected throughout survives,
# and linking resumes once the switch is turned off.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $dim = 2000;
my $batches = 110;
my $rows_per_batch = 1000;
my $node = engram_node(
	'interrupt',
	'engram.pause_linking' => 'on',
	'engram.ring_size' => "'1GB'",
	'engram.memory_limit' => "'1280MB'",
	max_wal_size => "'2GB'");

$node->safe_psql('postgres',
	"SELECT engram.create_space('tail', $dim, 'l2'), engram.create_space('other', 4, 'l2', 8, 32)");
for my $b (1 .. $batches)
{
	$node->safe_psql('postgres',
		    "SELECT engram.observe_batch('tail', (SELECT array_agg(array_fill((g * 0.001 + $b)::real, ARRAY[$dim])) "
		  . "FROM generate_series(1, $rows_per_batch) g))");
}
$node->safe_psql('postgres',
	    "SELECT engram.observe_batch('other', "
	  . "(SELECT array_agg(ARRAY[g, g, g, g]::real[]) FROM generate_series(1, 100) g))");
ok(wait_stored($node, 300000), 'every batch is stored');
my $tail_rows = $batches * $rows_per_batch;
is($node->safe_psql('postgres', "SELECT observations, linked FROM engram.spaces WHERE name = 'tail'"),
	"$tail_rows|0", 'with linking paused the whole space is an unlinked tail');
is($node->safe_psql('postgres', "SELECT linked FROM engram.spaces WHERE name = 'other'"),
	'0', 'no space is linked while linking is paused');

# A session that stays connected through everything below.
my ($bystander, $bystander_err) =
  start_psql_script($node, "SET application_name = 'bystander';\nSELECT pg_sleep(600);\n");
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'bystander' AND state = 'active'"),
	'the bystander session is connected');
my $bystander_before = $node->safe_psql('postgres',
	"SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = 'bystander'");

# One recall, timed inside its session; returns (milliseconds, stderr).
my $cue = "array_fill(0.5::real, ARRAY[$dim])";
sub timed_recall
{
	my ($settings) = @_;
	my $script = "$settings\n"
	  . "SELECT clock_timestamp() AS started \\gset\n"
	  . "SELECT count(*) FROM engram.recall('tail', $cue, 10);\n"
	  . "RESET statement_timeout;\n"
	  . "SELECT round(extract(epoch FROM clock_timestamp() - :'started'::timestamptz) * 1000);\n";
	my ($ret, $out, $err) = $node->psql('postgres', $script,
		on_error_stop => 0,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	my @lines = split /\n/, $out;
	return ($lines[-1], $err, $lines[0]);
}

# Uncancelled, a recall scans the whole tail.
my @full;
for (1 .. 3)
{
	my ($ms, $err, $count) = timed_recall('');
	is($count, '10', 'a recall without a timeout answers from the tail');
	is($err, '', 'and raises nothing');
	push @full, $ms;
}
@full = sort { $a <=> $b } @full;
my $full_ms = $full[1];
note("full scans of the tail: @full ms");

# Under statement_timeout the recall stops in the middle of the scan.
my @cancelled;
for (1 .. 3)
{
	my ($ms, $err) = timed_recall("SET statement_timeout = '50ms';");
	like($err, qr/ERROR:  57014: canceling statement due to statement timeout/,
		'statement_timeout cancels a recall over the tail with SQLSTATE 57014');
	push @cancelled, $ms;
}
@cancelled = sort { $a <=> $b } @cancelled;
note("cancelled recalls: @cancelled ms");
SKIP:
{
	skip "a full scan took only $full_ms ms: too fast to tell a stopped scan from a finished one", 1
	  if $full_ms < 120;
	cmp_ok($cancelled[0], '<', 0.6 * $full_ms,
		"a cancelled recall ends before a full scan would have ($cancelled[0] ms against $full_ms ms)");
}

# pg_cancel_backend stops one too.
my ($victim, $victim_err) = start_psql_script(
	$node,
	"SET application_name = 'victim';\n"
	  . join('', map { "SELECT count(*) FROM engram.recall('tail', $cue, 10);\n" } 1 .. 200),
	'-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'victim' AND query LIKE '%engram.recall%'"),
	'a session recalls in a loop');
is( $node->safe_psql(
		'postgres', "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim'"),
	't', 'it is sent a cancel');
$victim->finish;
like($$victim_err, qr/ERROR:  57014: canceling statement due to user request/, 'pg_cancel_backend cancels the recall');

# Nothing was left pinned: the drop completes, the workers free the index
# (they wait for pins before they do) and go on storing other commits.
my $tail_id = $node->safe_psql('postgres', "SELECT engram._space_id('tail')");
$node->safe_psql('postgres', "SELECT engram.drop_space('tail')");
pass('drop_space of the space completes');
$node->safe_psql('postgres', "SELECT engram.observe('other', '{7,7,7,7}')");
ok(wait_stored($node, 60000), 'the workers keep storing commits');
ok( $node->poll_query_until('postgres', "SELECT count(*) = 0 FROM engram._space_state() WHERE space_id = $tail_id"),
	'the index of the dropped space is freed');

is( $node->safe_psql('postgres',
		"SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = 'bystander'"),
	$bystander_before,
	'the bystander session survived');
ok(!$node->log_contains('terminated by signal'), 'no backend was terminated by a signal');
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'bystander'");
$bystander->finish;

# Linking resumes when the switch is turned off.
$node->safe_psql('postgres', "ALTER SYSTEM SET engram.pause_linking = off; SELECT pg_reload_conf()");
is($node->safe_psql('postgres', "SELECT engram.wait_linked('other', NULL, 60000)"), 't', 'linking resumes');
is($node->safe_psql('postgres', "SELECT observations, linked FROM engram.spaces WHERE name = 'other'"),
	'101|101', 'every observation of the remaining space is linked');

done_testing();
