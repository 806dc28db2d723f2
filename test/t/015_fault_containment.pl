# Faults stay local. A space that fills engram.memory_limit is quarantined
# while another space's single-row commits all succeed and recall correctly;
# after a restart every other space serves recall and the full one reports
# its state. 1,100 spaces each recall their own row. A worker stopped half
# way through a large id-range record leaves every row stored exactly once.
# With engram.max_spaces = 50, create_space refuses the 51st space with
# 54000, spaces beyond the setting after a restart are quarantined while the
# others answer, and no worker ever restarts.
#
# The full space here fills 64 MB at 4 dimensions (about 130,000 vectors),
# long before any per-array ceiling of the core. The last part grows a space
# of 2 dimensions past 2.1 million vectors in 640 MB: at that size a chunk of
# the core's segmented arrays holds 512K vectors, so the ceiling (2.1 million
# only at 768 dimensions, where the test would need 6.4 GB) lies far beyond;
# removing the ceiling altogether is the core's own change. The part probes
# for a ceiling anyway and is skipped if the space stops short of 2.1 million.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# Engram workers that exited since the server log had `from` bytes (a server
# stop makes them exit too, so count only within one run of the server).
sub worker_exits
{
	my ($node, $from) = @_;
	my @exits = substr(slurp_file($node->logfile), $from) =~ /background worker "engram worker" \(PID \d+\) exited/g;
	return scalar @exits;
}

sub sql_error
{
	my ($node, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return $ret == 0 ? '' : $err;
}

# --- a space fills memory while another keeps ingesting ------------------------
my $node = engram_node(
	'fault',
	'engram.memory_limit' => "'64MB'",
	'engram.ring_size' => "'4MB'",
	'engram.overload_timeout' => "'60s'");
my $log_from = -s $node->logfile;
my ($full, $steady) = split /\|/,
  $node->safe_psql('postgres',
	"SELECT engram.create_space('full', 4, 'l2', 16, 32), engram.create_space('steady', 4, 'l2')");
my @workers = worker_pids($node);

# Single-row commits into 'steady', paced so they go on while 'full' fills.
my $steady_commits = 300;
my ($steady_run, $steady_err) = start_psql_script($node,
	join('', map { "SELECT engram.observe('steady', ARRAY[$_, 2 * $_, 1, -$_]::real[]);\nSELECT pg_sleep(0.05);\n" }
		  1 .. $steady_commits));

# 'full' grows by 60,000-row transactions: each is too large for the ring
# (an eighth of 4 MB), so the workers read it back in chunks.
my ($full_batches, $refusal) = (0, '');
for my $round (1 .. 40)
{
	$refusal = sql_error($node,
		    "INSERT INTO engram.observations (space_id, embedding) "
		  . "SELECT $full, ARRAY[g, g % 1000, (g * 7) % 1013, $round]::real[] FROM generate_series(1, 60000) g");
	last if $refusal ne '';
	$full_batches++;
	ok(wait_stored($node, 180000), "batch $round into 'full' is consumed");
	ok($node->safe_psql('postgres', "SELECT engram.wait_linked(name, NULL, 180000) FROM engram.spaces "
		  . "WHERE name = 'full' AND state = 'ready'") ne 'f', "and linked");
}
cmp_ok($full_batches, '>', 0, "'full' took $full_batches batches, then refused the next commit");
like($refusal, qr/ERROR:  55000: space "full" is quarantined/, 'the refusal is 55000 and names the space');
like($refusal, qr/DETAIL:  Its index was given up: engram\.memory_limit was (nearly )?exhausted at [\d,]+ observations/,
	'the detail says why');
like($refusal, qr/HINT:  Raise engram\.memory_limit .*engram\.rebuild\(\)/, 'the hint says what to do');

$steady_run->finish;
is($$steady_err, '', "all $steady_commits single-row commits into 'steady' succeeded");
ok(wait_stored($node), 'the workers caught up');
is( $node->safe_psql(
		'postgres', qq{
	SELECT count(*) FROM engram.observations o
	WHERE o.space_id = $steady AND (SELECT r.id FROM engram.recall('steady', o.embedding, 1) r) = o.id}),
	$steady_commits,
	"every row of 'steady' is its own nearest neighbour");

my ($state, $detail) = split /\|/,
  $node->safe_psql('postgres', "SELECT state, state_detail FROM engram.spaces WHERE name = 'full'");
is($state, 'quarantined', "engram.spaces shows 'full' quarantined");
like($detail, qr/^quarantined: engram\.memory_limit was (nearly )?exhausted at [\d,]+ observations \([\d.]+ of 6[34]\.\d MB/,
	'with its reason');
is($node->safe_psql('postgres', "SELECT state FROM engram.spaces WHERE name = 'steady'"), 'ready', "'steady' is ready");
like(sql_error($node, "SELECT * FROM engram.recall('full', '{1,2,3,4}')"),
	qr/ERROR:  55000: space "full" is quarantined/, "recall in 'full' is refused");
like(sql_error($node, "SELECT engram.observe('full', '{1,2,3,4}')"),
	qr/ERROR:  55000: space "full" is quarantined/, "a commit into 'full' is refused");
my $warnings = () = slurp_file($node->logfile) =~ /WARNING:  space "full" is quarantined/g;
is($warnings, 1, 'the quarantine is logged once');
is_deeply([ worker_pids($node) ], \@workers, 'no worker restarted');
is(worker_exits($node, $log_from), 0, 'no worker exited');

# --- restart: the others serve recall, the full one reports its state ----------
$node->restart;
$log_from = -s $node->logfile;
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM engram.recall('steady', '{7,14,1,-7}', 3) WHERE distance = 0"),
	1, "after a restart 'steady' answers recall");
($state, $detail) = split /\|/,
  $node->safe_psql('postgres', "SELECT state, state_detail FROM engram.spaces WHERE name = 'full'");
is($state, 'quarantined', "'full' is quarantined again by the loader");
like($detail, qr/while loading after a start/, 'and says it happened while loading');
ok($node->wait_for_log(qr/engram worker \d loaded \d+ observations of 2 spaces \(1 quarantined\)/),
	'the loader went on with the other space');
like(sql_error($node, "SELECT engram.rebuild('full')"), qr/ERROR:  55000: space "full" is quarantined/,
	'a rebuild that still does not fit says so');
$node->safe_psql('postgres', "SELECT engram.drop_space('full')");
# One session: a recall waits for the session's own commits (read-your-writes),
# while another session's recall may run before the workers stored them.
like( $node->safe_psql(
		'postgres', "SELECT engram.create_space('refill', 4, 'l2');
		SELECT count(engram.observe('refill', ARRAY[g, 0, 0, 1]::real[])) FROM generate_series(1, 100) g;
		SELECT count(*) FROM engram.recall('refill', '{5,0,0,1}', 10)"),
	qr/^\d+\n100\n10$/, 'after dropping it a new space takes its memory');
check_converged($node, 'after the drop');
is(worker_exits($node, $log_from), 0, 'no worker exited');
$node->stop;

# --- many spaces, and a worker stopped half way through a large record ---------
# 1,100 spaces of one row and a million-row space at m 2: about 630 MB since
# nodes carry their deletion generation, time and attributes (Layout 6).
my $many = engram_node('many', 'engram.memory_limit' => "'800MB'");
$many->safe_psql('postgres',
	"SELECT count(engram.create_space('sp' || lpad(g::text, 4, '0'), 2, 'l2', 2, 8)) FROM generate_series(1, 1100) g");
$many->safe_psql('postgres',
	"INSERT INTO engram.observations (space_id, embedding) SELECT space_id, ARRAY[space_id, -space_id]::real[] "
	  . "FROM engram.space_catalog");
ok(wait_stored($many), 'one row in each of 1,100 spaces is stored');
is( $many->safe_psql(
		'postgres', q{
	SELECT count(*) FROM engram.space_catalog c JOIN engram.observations o USING (space_id)
	WHERE (SELECT r.id FROM engram.recall(c.name, o.embedding, 1) r) = o.id}),
	1100,
	'each of 1,100 spaces recalls its own row');
is($many->safe_psql('postgres', "SELECT count(*) FROM engram.spaces WHERE state = 'ready'"), 1100, 'all are ready');

my $bulk = $many->safe_psql('postgres', "SELECT engram.create_space('bulk', 2, 'l2', 2, 8)");
my $rows = 1000000;
$many->safe_psql('postgres',
	"INSERT INTO engram.observations (space_id, embedding) SELECT $bulk, ARRAY[g, g % 977]::real[] FROM generate_series(1, $rows) g");
my ($caught, $stopped) = (0, 0);
for (1 .. 3000)
{
	my ($stored, $pid) = split /\|/, $many->safe_psql('postgres',
		"SELECT (SELECT observations FROM engram.spaces WHERE name = 'bulk'), "
		  . "(SELECT pid FROM engram.workers WHERE state = 'draining' LIMIT 1)");
	if ($stored > 0 && $stored < $rows && $pid)
	{
		$caught = $stored;
		$stopped = kill 'TERM', $pid;
		last;
	}
	last if $stored >= $rows;
	usleep(5000);
}
ok($caught > 0 && $stopped, "a worker was stopped with $caught of $rows rows of one record stored");
check_converged($many, 'after the stopped worker');
$many->stop;

# --- engram.max_spaces -------------------------------------------------------------
my $limited = engram_node('limited', 'engram.max_spaces' => 50);
$log_from = -s $limited->logfile;
my @limited_workers = worker_pids($limited);
$limited->safe_psql('postgres',
	"SELECT count(engram.create_space('lim' || g, 2, 'l2', 2, 8)) FROM generate_series(1, 50) g");
my $full_directory = sql_error($limited, "SELECT engram.create_space('lim51', 2)");
like($full_directory, qr/ERROR:  54000: cannot create space "lim51": the space directory is full/,
	'the 51st space is refused with 54000');
like($full_directory, qr/HINT:  Drop unused spaces, or raise engram\.max_spaces/, 'the hint names the setting');
$limited->safe_psql('postgres', "SELECT engram.drop_space('lim50')");
$limited->safe_psql('postgres', "BEGIN; SELECT engram.create_space('rolledback', 2); ROLLBACK;");
ok(wait_stored($limited), 'the drop and the rollback are resolved');
$limited->safe_psql('postgres', "SELECT engram.create_space('lim50', 2, 'l2', 2, 8)");
pass('a dropped space and a rolled back creation give their slots back');
is_deeply([ worker_pids($limited) ], \@limited_workers, 'no worker restarted');
is(worker_exits($limited, $log_from), 0, 'no worker exited');

# 60 spaces with a row each, then a restart with room for 50.
$limited->append_conf('postgresql.conf', "engram.max_spaces = 60\n");
$limited->restart;
$limited->safe_psql('postgres',
	"SELECT count(engram.create_space('lim' || g, 2, 'l2', 2, 8)) FROM generate_series(51, 60) g");
$limited->safe_psql('postgres',
	"INSERT INTO engram.observations (space_id, embedding) SELECT space_id, ARRAY[space_id, 1]::real[] FROM engram.space_catalog");
ok(wait_stored($limited), '60 spaces hold a row each');
$limited->append_conf('postgresql.conf', "engram.max_spaces = 50\n");
$limited->restart;
$log_from = -s $limited->logfile;
@limited_workers = worker_pids($limited);
my $recall_own = q{
	SELECT count(*) FROM engram.space_catalog c JOIN engram.observations o USING (space_id)
	WHERE c.space_id <= (SELECT min(space_id) FROM engram.spaces WHERE state = 'quarantined') - 1
	  AND (SELECT r.id FROM engram.recall(c.name, o.embedding, 1) r) = o.id};
is($limited->safe_psql('postgres', $recall_own), 50, 'the 50 spaces that have a slot recall their rows');
is($limited->safe_psql('postgres', "SELECT count(*) FROM engram.spaces WHERE state = 'quarantined'"),
	10, 'the 10 beyond engram.max_spaces are quarantined');
my ($homeless, $homeless_detail) = split /\|/, $limited->safe_psql('postgres',
	"SELECT name, state_detail FROM engram.spaces WHERE state = 'quarantined' ORDER BY space_id LIMIT 1");
like($homeless_detail, qr/^quarantined: no slot in the space directory: all 50 of engram\.max_spaces are in use/,
	'and say why');
ok($limited->wait_for_log(qr/WARNING:  10 spaces are quarantined: engram\.max_spaces is 50/),
	'the loader says so once');
my $refused = sql_error($limited, "SELECT * FROM engram.recall('$homeless', '{1,1}')");
like($refused, qr/ERROR:  55000: space "$homeless" is quarantined/, 'recall in one of them is refused');
like($refused, qr/HINT:  Raise engram\.max_spaces/, 'with a hint to raise engram.max_spaces');
like(sql_error($limited, "SELECT engram.observe('$homeless', '{1,1}')"), qr/ERROR:  55000: space \d+ is quarantined/,
	'a commit into it is refused');
like(sql_error($limited, "SELECT engram.create_space('lim61', 2)"), qr/ERROR:  54000/,
	'create_space is refused while the directory is full');
like(sql_error($limited, "SELECT engram.rebuild('$homeless')"), qr/ERROR:  54000: cannot rebuild space \d+/,
	'a rebuild without a free slot is refused');
$limited->safe_psql('postgres', "SELECT engram.drop_space('lim1')");
ok(wait_stored($limited), 'a drop frees a slot');
$limited->safe_psql('postgres', "SELECT engram.rebuild('$homeless')");
is($limited->safe_psql('postgres', "SELECT state FROM engram.spaces WHERE name = '$homeless'"), 'ready',
	'the rebuild gives the quarantined space the free slot');
is( $limited->safe_psql(
		'postgres', qq{
	SELECT (SELECT r.id FROM engram.recall('$homeless', o.embedding, 1) r) = o.id
	FROM engram.observations o JOIN engram.space_catalog c USING (space_id) WHERE c.name = '$homeless'}),
	't', 'and it recalls its row');
is_deeply([ worker_pids($limited) ], \@limited_workers, 'no worker restarted');
is(worker_exits($limited, $log_from), 0, 'no worker exited');
$limited->stop;

# --- past 2.1 million small vectors -------------------------------------------------
SKIP:
{
	my $large = engram_node(
		'large',
		'engram.memory_limit' => "'640MB'",
		'engram.ring_size' => "'64MB'",
		'engram.overload_timeout' => "'600s'");
	my ($huge, $small) = split /\|/,
	  $large->safe_psql('postgres',
		"SELECT engram.create_space('huge', 2, 'l2', 2, 8), engram.create_space('small', 2, 'l2')");
	my $small_commits = 300;
	my ($small_run, $small_err) = start_psql_script($large,
		join('', map { "SELECT engram.observe('small', ARRAY[$_, 1]::real[]);\nSELECT pg_sleep(0.2);\n" }
			  1 .. $small_commits));
	for my $round (1 .. 30)
	{
		last if sql_error($large,
			    "INSERT INTO engram.observations (space_id, embedding) "
			  . "SELECT $huge, ARRAY[g, $round]::real[] FROM generate_series(1, 250000) g") ne '';
		wait_stored($large, 600000);
	}
	my $huge_detail = $large->safe_psql('postgres', "SELECT state_detail FROM engram.spaces WHERE name = 'huge'");
	my ($at) = $huge_detail =~ /at ([\d,]+) observations/;
	$at =~ s/,//g if defined $at;
	$small_run->finish;
	skip "a space stopped below 2.1 million vectors: $huge_detail", 5 if !defined $at || $at < 2100000;
	cmp_ok($at, '>=', 2100000, "'huge' grew past 2.1 million vectors before it filled memory ($at)");
	is($$small_err, '', "all $small_commits commits into 'small' succeeded meanwhile");
	ok(wait_stored($large), 'the workers caught up');
	$large->restart;
	is( $large->safe_psql('postgres',
			"SELECT count(*) FROM engram.recall('small', '{5,1}', 1) WHERE distance = 0"),
		1, "after a restart 'small' answers");
	# The loader applies the same rules, but in id order: 'huge' is loaded
	# before 'small' holds any memory, so it may now fit below the reserve.
	is( $large->safe_psql(
			'postgres', qq{
		SELECT (state = 'quarantined' AND state_detail LIKE 'quarantined: engram.memory_limit %')
			OR (state = 'ready' AND observations = (SELECT count(*) FROM engram.observations WHERE space_id = $huge))
		FROM engram.spaces WHERE name = 'huge'}),
		't', "'huge' reports its state: quarantined with its reason, or ready with every row");
	$large->stop;
}

done_testing();
