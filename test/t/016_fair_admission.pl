# Admission is fair between spaces. One worker with one link thread and a
# 2 MB ring keep the pipeline small, so one space can fill it:
#  1. with the workers paused, a space flooded until its commits are refused
#     does not hold back another space's commits; a plain role that asks for
#     an hour-long overload wait waits only engram.max_overload_timeout, and
#     statement_timeout and a cancel end a wait at commit;
#  2. a transaction whose ring records cannot fit the ring is refused at once
#     with SQLSTATE 54000 (at commit, or while it inserts), not after a wait;
#  3. a 300,000-row bulk transaction into one space overloads the pipeline
#     while another space's 200 single-row commits, under policy "error",
#     every one succeeds; the bulk space's own next commit is the one refused.
# After each part the stores hold exactly the committed rows.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = engram_node(
	'fair',
	'engram.ring_size' => "'2MB'",
	'engram.workers' => 1,
	'engram.link_threads' => 1,
	'engram.max_overload_timeout' => "'2s'");
my $vector = q{'{0.1,0.2,0.3,0.4}'};
$node->safe_psql(
	'postgres', q{
	SELECT engram.create_space('flood', 4, 'l2');
	SELECT engram.create_space('tenant', 4, 'l2');
	SELECT engram.create_space('bulk', 4, 'l2', ef_construction => 400);
	CREATE ROLE plain LOGIN;
	GRANT USAGE ON SCHEMA engram TO plain;
	GRANT SELECT, INSERT ON engram.observations TO plain;
	GRANT USAGE ON SEQUENCE engram.observations_id_seq TO plain;});

sub signal_workers
{
	my ($signal) = @_;
	kill $signal, worker_pids($node);
	return;
}

# Runs SQL; returns (exit code, stdout, stderr with SQLSTATEs).
sub run
{
	my ($sql, %options) = @_;
	return $node->psql('postgres', $sql, extra_params => [ '-v', 'VERBOSITY=verbose' ], %options);
}

# --- 1. a space over its share, with the workers paused ---------------------
signal_workers('STOP');
my $flood = "SET engram.overload_policy = 'error'; "
  . "SELECT engram.observe_batch('flood', array_fill(0.5::real, ARRAY[2000, 4]))";
my ($accepted, $refusal) = (0, '');
for my $i (1 .. 200)
{
	my ($ret, $out, $err) = run($flood);
	if ($ret == 0) { $accepted++; next; }
	$refusal = $err;
	last;
}
cmp_ok($accepted, '>', 0, "flood batches were accepted until the space filled the pipeline ($accepted)");
like($refusal, qr/ERROR:  53E01: engram ingest pipeline is overloaded/, 'then the flood space was refused');
like($refusal, qr/DETAIL:  The pipeline is \d+% full \(overloaded at 95%\), and space_id \d+ holds \d+% of its share/,
	'the refusal names the space over its share');
is($node->safe_psql('postgres', "SELECT level FROM engram.pressure('flood')"), 'overloaded',
	"pressure('flood') is overloaded");
isnt($node->safe_psql('postgres', "SELECT level FROM engram.pressure('tenant')"), 'overloaded',
	"pressure('tenant') is not");
my $tenant_ok = 0;
for my $i (1 .. 20)
{
	my ($ret) = run("SET engram.overload_policy = 'error'; SELECT engram.observe('tenant', $vector)");
	$tenant_ok++ if $ret == 0;
}
is($tenant_ok, 20, 'every single-row commit into another space succeeds while the flood space is held back');

# A plain role may ask for an hour; the server's ceiling (2 s here) decides.
my ($ret, $out, $err) = $node->psql(
	'postgres',
	"SET engram.overload_timeout = '1h'; SHOW engram.overload_timeout; "
	  . "SELECT engram.observe('flood', $vector)",
	extra_params => [ '-U', 'plain', '-v', 'VERBOSITY=verbose' ]);
is($out, '1h', 'a plain role may set engram.overload_timeout above the ceiling');
like($err, qr/ERROR:  53E01: engram ingest pipeline is overloaded/, 'its commit still fails with 53E01');
like(
	$err,
	qr/it did not drain within 2000 ms \(engram\.overload_timeout, 3600000 ms, is capped by engram\.max_overload_timeout\)/,
	'after the capped wait, which the detail states');
($ret, $out, $err) = run('SET engram.max_overload_timeout = 0', extra_params => [ '-U', 'plain' ]);
like($err, qr/parameter "engram\.max_overload_timeout" cannot be changed now/, 'nor can it change the ceiling');

# statement_timeout and a cancel end a commit's wait.
($ret, $out, $err) = run(
	"SET engram.overload_timeout = '1h'; SET statement_timeout = '300ms'; SELECT engram.observe('flood', $vector)");
like($err, qr/ERROR:  57014: canceling statement due to statement timeout/, 'statement_timeout ends a wait at commit');
like($err, qr/DETAIL:  The commit was waiting for room in the engram ingest pipeline/, 'and says what it waited for');
$node->safe_psql('postgres', "ALTER SYSTEM SET engram.max_overload_timeout = '10min'; SELECT pg_reload_conf()");
my ($waiter, $waiter_err) = start_psql_script($node,
	"SET engram.overload_timeout = '10min';\nSELECT engram.observe('flood', $vector);\n", '-v', 'VERBOSITY=verbose');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'Extension' AND backend_type = 'client backend'"),
	'a commit waits for room');
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'Extension' AND backend_type = 'client backend'");
$waiter->finish;
like($$waiter_err, qr/ERROR:  57014: canceling statement due to user request/, 'a cancel ends the wait');
$node->safe_psql('postgres', "ALTER SYSTEM RESET engram.max_overload_timeout; SELECT pg_reload_conf()");
signal_workers('CONT');
check_converged($node, 'after the flood');

# --- 2. transactions the ring can never hold --------------------------------
# Rows alternating between two spaces make one id range each; past an eighth
# of the ring the rows travel as id ranges, one record per range here.
sub alternating
{
	my ($rows) = @_;
	return "INSERT INTO engram.observations (space_id, embedding) "
	  . "SELECT CASE WHEN g % 2 = 0 THEN engram._space_id('flood') ELSE engram._space_id('tenant') END, "
	  . "ARRAY[g, 1, 2, 3]::real[] FROM generate_series(1, $rows) g";
}
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM engram.observations');
($ret, $out, $err) = run("SET engram.overload_timeout = '1h'; " . alternating(20000));
like($err, qr/ERROR:  54000: transaction is too large for the engram ingest pipeline/,
	'a transaction whose records exceed half the ring gets 54000 at commit, not a wait');
like($err, qr/DETAIL:  Its 20000 observations need \d+ bytes of ring records, more than half of engram\.ring_size/,
	'the detail says how much ring it needs');
like($err, qr/HINT:  Split it into smaller transactions.*raise engram\.ring_size/, 'the hint says what to do');
($ret, $out, $err) = run(alternating(140000));
like($err, qr/ERROR:  54000: transaction is too large/, 'one with more id ranges than the ring holds fails as it inserts');
like($err, qr/need at least \d+ id ranges/, 'counting its id ranges');
is($node->safe_psql('postgres', 'SELECT count(*) FROM engram.observations'), $before, 'neither left a row');
# Refused inside a savepoint, the rest of the transaction still commits.
($ret, $out, $err) = run("BEGIN;\nSELECT engram.observe('tenant', $vector);\nSAVEPOINT big;\n"
	  . alternating(140000) . ";\nROLLBACK TO SAVEPOINT big;\nCOMMIT;\n", on_error_stop => 0);
like($err, qr/ERROR:  54000/, 'a savepoint that grows too large is refused');
is($node->safe_psql('postgres', 'SELECT count(*) FROM engram.observations'), $before + 1,
	'and the row observed before it commits');
($ret) = run("SET engram.overload_policy = 'error'; SELECT engram.observe('tenant', $vector)");
is($ret, 0, 'and commits go on');
check_converged($node, 'after the oversized transactions');

# --- 3. a bulk load beside single-row commits ----------------------------------
$node->safe_psql('postgres',
	"INSERT INTO engram.observations (space_id, embedding) SELECT engram._space_id('bulk'), "
	  . "ARRAY[random(), random(), random(), random()]::real[] FROM generate_series(1, 300000)");
ok($node->poll_query_until('postgres', "SELECT level = 'overloaded' FROM engram.pressure()"),
	'the 300,000-row transaction overloads the pipeline');
is($node->safe_psql('postgres', "SELECT level FROM engram.pressure('bulk')"), 'overloaded',
	"pressure('bulk') is overloaded");
isnt($node->safe_psql('postgres', "SELECT level FROM engram.pressure('tenant')"), 'overloaded',
	"pressure('tenant') is not");
# Each commit reports the pipeline's level just before it.
my $tenant = "SET engram.overload_policy = 'error';\n"
  . join('', map { "SELECT (SELECT level FROM engram.pressure()) || ' ' || engram.observe('tenant', $vector);\n" } 1 .. 200);
($ret, $out, $err) = $node->psql('postgres', $tenant, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
my @levels = map { (split / /)[0] } grep { /\S/ } split /\n/, $out;
is(scalar(@levels), 200, 'all 200 single-row commits into the other space succeeded') or diag($err);
unlike($err, qr/ERROR/, 'none of them was refused');
my $while_overloaded = grep { $_ eq 'overloaded' } @levels;
cmp_ok($while_overloaded, '>=', 50, "$while_overloaded of them committed while the pipeline was overloaded");
($ret, $out, $err) = run("SET engram.overload_policy = 'error'; SELECT engram.observe('bulk', $vector)");
like($err, qr/ERROR:  53E01: .*\n.*DETAIL:  .*space_id \d+ holds/, "the bulk space's own next commit is held back");
check_converged($node, 'after the bulk load');

done_testing();
