# engram.progress shows the long operations while they run
# (src/pg/progress.hpp): a rebuild of a 200,000-row space, polled from
# another session as often as it answers, reads its rows and then links
# them, each phase counting up to the 200,000 rows, under the pid of a
# worker and one start time; its row goes when engram.rebuild() returns.
# Then the start-up load after a restart (graph files off, so every row
# comes from the table) shows as 'load', reading the space's rows, and goes
# once the load is done, or at once with the worker doing it when that is
# terminated; a graph file write (engram.checkpoint()) as 'file
# write', writing the nodes and then syncing; and the compaction after half
# of the rows are deleted as 'compaction', copying the nodes kept.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $rows = 200_000;
my $node = engram_node('progress', 'engram.persist' => 'off', 'engram.memory_limit' => "'1GB'");
$node->safe_psql('postgres', "SELECT engram.create_space('big', 8, 'l2')");
for my $batch (0 .. 3)
{
	$node->safe_psql('postgres', qq{
		INSERT INTO engram.observations (space_id, embedding)
		SELECT (SELECT space_id FROM engram.space_catalog WHERE name = 'big'),
			   ARRAY[random(), random(), random(), random(), random(), random(), random(), random()]::real[]
		FROM generate_series(1, $rows / 4)});
}
ok(wait_stored($node), 'stored');
is($node->safe_psql('postgres', "SELECT engram.wait_linked('big', NULL, 900000)"), 't', 'linked');
is($node->safe_psql('postgres', 'SELECT count(*) FROM engram.progress'), '0', 'nothing is in progress when idle');

my @workers = worker_pids($node);
my $watcher = open_session($node);
my $sample = q{SELECT operation, phase, rows_done, coalesce(rows_total, -1), pid, started_at, coalesce(space, '?')
			   FROM engram.progress WHERE operation = 'rebuild'};

# Samples engram.progress while a psql harness runs; returns each answer's
# rows as arrays, and stops when the harness has finished.
sub samples_while
{
	my ($h, $query) = @_;
	my @samples;
	while ($h->pumpable)
	{
		$h->pump_nb;
		push @samples, [ split /\|/ ] for grep { $_ ne '' } split /\n/, session_query($watcher, $query);
		usleep(5_000);
	}
	$h->finish;
	return @samples;
}

my ($h, $err) = start_psql_script($node, "SELECT engram.rebuild('big');\n");
my @samples = samples_while($h, $sample);
is($$err, '', 'engram.rebuild() succeeded');
note(scalar(@samples) . ' samples of the rebuild');

# Phases in order, each counting up; totals and identity fixed.
my %seen;
my ($phase_order_ok, $monotonic, $within_total, $same_start, $worker_pid, $named) = (1, 1, 1, 1, 1, 1);
my ($last_phase, $last_done) = ('', -1);
my %rank = ('reading rows' => 1, 'linking' => 2);
for my $s (@samples)
{
	my ($operation, $phase, $done, $total, $pid, $started, $space) = @$s;
	$seen{$phase}{$done} = 1;
	$phase_order_ok = 0 if !$rank{$phase} || ($last_phase ne '' && $rank{$phase} < $rank{$last_phase});
	$monotonic = 0 if $phase eq $last_phase && $done < $last_done;
	# While the rows are counted, before any is read, the total is unknown.
	my $counting = $phase eq 'reading rows' && $total == -1 && $done == 0;
	$within_total = 0 if !$counting && ($total != $rows || $done > $total || $done < 0);
	$same_start = 0 if $started ne $samples[0][5];
	$worker_pid = 0 if !grep { $_ == $pid } @workers;
	$named = 0 if $space ne 'big';
	($last_phase, $last_done) = ($phase, $done);
}
ok($phase_order_ok, "phases are 'reading rows' then 'linking'");
ok($monotonic, 'rows_done never goes back within a phase');
ok($within_total, "rows_total is $rows and rows_done never exceeds it");
ok($same_start, 'started_at stays the same');
ok($worker_pid, 'the pid is a worker\'s');
ok($named, 'the row names the space');
my @linking = sort { $a <=> $b } keys %{ $seen{linking} // {} };
note(scalar(keys %{ $seen{'reading rows'} // {} }) . ' counts seen while reading, ' . scalar(@linking)
	  . ' while linking, from ' . ($linking[0] // '-') . ' to ' . ($linking[-1] // '-'));
cmp_ok(scalar(@linking), '>=', 3, 'the linking was seen at several counts');
ok(@linking && $linking[-1] <= $rows, 'the last count sampled is within the total');
is(session_query($watcher, q{SELECT count(*) FROM engram.progress}), '0', 'the row is gone once the rebuild is done');

# The start-up load after a restart, read from the table. The worker seen
# loading first is terminated: its row goes with it (the next worker loads
# from the start).
$node->restart;
$watcher = open_session($node);
my $load_sample = q{SELECT operation, phase, rows_done, coalesce(rows_total::text, 'null'), coalesce(space, '?'), pid
					FROM engram.progress WHERE operation = 'load'};
my @loads;
my ($terminated, $stale) = (0, 0);
for (1 .. 6000)
{
	my @now = map { [ split /\|/ ] } grep { $_ ne '' } split /\n/, session_query($watcher, $load_sample);
	push @loads, @now;
	$stale += grep { $_->[5] == $terminated } @now;
	if (!$terminated && @now)
	{
		$terminated = $now[0][5];
		is(session_query($watcher, "SELECT pg_terminate_backend($terminated, 60000)"), 't',
			'the loading worker was terminated');
	}
	last if !@now && session_query($watcher, q{SELECT observations FROM engram.spaces WHERE name = 'big'}) eq $rows;
	usleep(5_000);
}
note(scalar(@loads) . ' samples of the load');
ok(@loads > 0, 'the start-up load was seen');
is($stale, 0, 'no row of the terminated worker was seen after it exited');
ok(!grep({ $_->[1] ne 'reading rows' || $_->[4] ne 'big' || $_->[3] ne 'null' || $_->[2] > $rows } @loads),
	'the load reads the space\'s rows, their total unknown');
is(poll_until($node, q{SELECT count(*) FROM engram.progress WHERE operation = 'load'}, '0', 60), '0',
	'the load\'s row is gone once it is done');
is($node->safe_psql('postgres', "SELECT observations FROM engram.spaces WHERE name = 'big'"), $rows,
	'every row was loaded');

# A graph file write (engram.checkpoint()), by the writer, writing the
# space's nodes and then syncing. A write takes a fraction of a second, so
# a poll may miss it: then a row is added (the file is due again) and the
# checkpoint repeated, up to five times.
$node->append_conf('postgresql.conf', "engram.persist = on\nengram.erase_within = '1s'\n");
$node->reload;
my $writer = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'engram writer'});
my ($nodes, @writes) = ($rows);
for my $attempt (1 .. 5)
{
	($h, $err) = start_psql_script($node, "SELECT engram.checkpoint();\n");
	@writes = samples_while($h, q{SELECT phase, rows_done, coalesce(rows_total, -1), pid, coalesce(space, '?'),
										 started_at
								  FROM engram.progress WHERE operation = 'file write'});
	is($$err, '', "engram.checkpoint() succeeded (attempt $attempt)");
	last if @writes;
	$node->safe_psql('postgres', qq{
		INSERT INTO engram.observations (space_id, embedding)
		SELECT space_id, '{0,0,0,0,0,0,0,$attempt}' FROM engram.space_catalog WHERE name = 'big'});
	ok(wait_stored($node), 'the row added is stored');
	$nodes++;
}
note(scalar(@writes) . ' samples of the file write');
ok(@writes > 0, 'the file write was seen');
# Each write (its start time) counts up while writing, then syncs; a routine
# write may come just before the checkpoint's own.
my %written;
my $write_ok = 1;
for my $w (@writes)
{
	my ($phase, $done, $total, $pid, $space, $started) = @$w;
	$write_ok = 0 if $pid != $writer || $space ne 'big';
	my $before = $written{$started} // -1;
	if ($phase eq 'writing')
	{
		$write_ok = 0 if $total != $nodes || $done > $total || $done < $before;
		$written{$started} = $done;
	}
	else
	{
		$write_ok = 0 if $phase ne 'syncing' || $total != -1;
		$written{$started} = $nodes + 1; # no writing after the sync
	}
}
note(join('; ', map { join(' ', @$_) } @writes)) if !$write_ok;
ok($write_ok, "the writer writes up to the space's $nodes nodes, then syncs");
is(session_query($watcher, q{SELECT count(*) FROM engram.progress WHERE operation = 'file write'}), '0',
	'the write\'s row is gone once the checkpoint returns');

# A compaction erasing the half of the rows deleted, due 0.5 s after the
# delete is stored (engram.erase_within is 1 s): it copies the nodes kept.
my $kept = $node->safe_psql('postgres', q{
	DELETE FROM engram.observations WHERE id % 2 = 0;
	SELECT count(*) FROM engram.observations});
my @compactions;
for (1 .. 12000)
{
	my @now = map { [ split /\|/ ] } grep { $_ ne '' } split /\n/, session_query($watcher, q{
		SELECT phase, rows_done, coalesce(rows_total, -1), coalesce(space, '?')
		FROM engram.progress WHERE operation = 'compaction'});
	push @compactions, @now;
	# Done: the forgets are stored (observations) and erased (forgotten).
	last if !@now && session_query($watcher, qq{
		SELECT observations = $kept AND forgotten = 0 FROM engram.spaces WHERE name = 'big'}) eq 't';
	usleep(5_000);
}
note(scalar(@compactions) . ' samples of the compaction');
ok(@compactions > 0, 'the compaction was seen');
my ($copied, $compaction_ok) = (-1, 1);
for my $c (@compactions)
{
	my ($phase, $done, $total, $space) = @$c;
	$compaction_ok = 0
	  if $phase ne 'copying' || $space ne 'big' || $total != $kept || $done > $total || $done < $copied;
	$copied = $done;
}
ok($compaction_ok, "the compaction copies up to the $kept nodes kept");
is(poll_until($node, q{SELECT count(*) FROM engram.progress WHERE operation = 'compaction'}, '0', 60), '0',
	'the compaction\'s row is gone once it is done');

done_testing();
