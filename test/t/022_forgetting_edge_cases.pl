# Edge cases of forgetting (deletes and updates), each once the cause of a
# bug: an as_of answer that missed a row or showed values it never had, a
# deleted vector kept in memory or in a graph file, a graph file loaded
# although it predated an update, counters that wrapped, and a compaction
# retried at every drain. Each case below says what it guards.
#
# Two nodes keep the cases cheap: `edges` takes every case that needs
# nothing special of its slots and memory; `slots` has room for three spaces
# (one after a restart), in 16MB of index memory.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Copy qw(copy);
use Time::HiRes qw(usleep);

# Graph files are written only at engram.checkpoint() and at a clean
# shutdown, so each case decides when a file exists. Compaction waits an hour
# until the cases that need it lower engram.erase_within. Commits wait for a
# synchronous standby that does not exist only where a session asks for it
# (which takes WAL senders).
my $node = engram_node(
	'edges',
	'engram.persist_interval' => 0,
	'engram.persist_rows' => 0,
	'engram.erase_within' => "'1h'",
	max_prepared_transactions => 2,
	synchronous_standby_names => "'nobody'",
	synchronous_commit => "'local'",
	wal_level => 'replica',
	max_wal_senders => 4);

sub space
{
	my ($name, $dim) = @_;
	return $node->safe_psql('postgres', "SELECT engram.create_space('$name', $dim, 'l2')");
}

# --- a transaction taken back to nothing can be prepared ---------------------
# A row inserted and deleted again inside a savepoint is not counted among
# the transaction's observations; once the transaction spilled to id ranges,
# its id still became part of a range, and rolling the savepoint back
# subtracted the whole range: the count wrapped, and PREPARE TRANSACTION of a
# transaction that observed nothing was refused with 2^64 - 1 observations.
my $prep = space('prep', 64);
my ($rc, $out, $err) = $node->psql(
	'postgres', qq{
	BEGIN;
	SAVEPOINT s;
	INSERT INTO engram.observations (space_id, embedding, content) VALUES ($prep, array_fill(1::real, ARRAY[64]), 'x');
	DELETE FROM engram.observations WHERE space_id = $prep AND content = 'x';
	INSERT INTO engram.observations (space_id, embedding)
	SELECT $prep, array_fill(g::real, ARRAY[64]) FROM generate_series(1, 5000) g;
	ROLLBACK TO SAVEPOINT s;
	PREPARE TRANSACTION 'nothing_observed';
	COMMIT PREPARED 'nothing_observed';},
	on_error_stop => 1);
is($rc, 0, 'prepare: a transaction left with no observation can be prepared') or diag($err);

# --- rows of a spilled transaction changed before the worker reads them -----
# A transaction too large for the ring publishes id ranges; the worker reads
# the rows back from the table when it reaches the record. A row deleted
# before then is never stored, and one updated before then is stored with
# its new values at the transaction's generation G. Recall as_of G (before
# the delete or update) must then find the row as it was, or refuse the
# snapshot with "older than the index can answer": it must never miss the
# row or show values the row did not have at G. A spilled transaction whose
# rows nobody touched stays answerable at G.
#
# The worker is held before the spilled records by a commit that waits for
# the synchronous standby: it reserved its ring record at pre-commit, and
# records are consumed in order, so nothing behind it is read until it is
# cancelled.
my %spill = map { $_ => space("spill_$_", 64) } qw(kept deleted updated);
ok(wait_stored($node), 'spill: spaces ready');
my ($blocker) = start_psql_script(
	$node, "SET application_name = 'blocker'; SET synchronous_commit = on;
	INSERT INTO engram.observations (space_id, embedding) VALUES ($spill{kept}, array_fill(0.5::real, ARRAY[64]));");
is(poll_until($node, "SELECT wait_event FROM pg_stat_activity WHERE application_name = 'blocker'", 'SyncRep', 60),
	'SyncRep', 'spill: a commit holds its ring record');
my $blocker_pid = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE application_name = 'blocker'");

# 5000 rows of 64 floats are over an eighth of the 8MB ring: id ranges. Row
# 2500 is the one to change, at 7 in every component (the others are below 1).
for my $which (sort keys %spill)
{
	$node->safe_psql(
		'postgres', qq{
		INSERT INTO engram.observations (space_id, embedding, content, confidence, metadata)
		SELECT $spill{$which}, array_fill(CASE WHEN g = 2500 THEN 7 ELSE g % 97 / 100.0 END::real, ARRAY[64]),
			   CASE WHEN g = 2500 THEN 'x' END, 0.5, '{"v": 1}'
		FROM generate_series(1, 5000) g});
}
$node->safe_psql('postgres', "DELETE FROM engram.observations WHERE space_id = $spill{deleted} AND content = 'x'");
$node->safe_psql('postgres',
	qq{UPDATE engram.observations SET confidence = 0.9, metadata = '{"v": 2}'
	   WHERE space_id = $spill{updated} AND content = 'x'});
$node->safe_psql('postgres', "SELECT pg_cancel_backend($blocker_pid)");
$blocker->finish;
ok(wait_stored($node), 'spill: the spilled records are stored');

my $cue = 'array_fill(7::real, ARRAY[64])';
my %inserted_at;
for my $which (sort keys %spill)
{
	# The spilled transaction's generation, as its untouched rows carry it.
	$inserted_at{$which} = $node->safe_psql('postgres',
		"SELECT generation FROM engram.recall('spill_$which', array_fill(0.96::real, ARRAY[64]), 1)");
}
is( $node->safe_psql('postgres',
		"SELECT distance, confidence FROM engram.recall('spill_kept', $cue, 1, as_of => $inserted_at{kept})"),
	'0|0.5',
	'spill: an untouched spilled transaction is answerable as of its generation');
is($node->safe_psql('postgres', "SELECT distance > 0 FROM engram.recall('spill_deleted', $cue, 1)"),
	't', 'spill: the deleted row is not recalled now');
($rc, $out, $err) = $node->psql('postgres',
	"SELECT distance FROM engram.recall('spill_deleted', $cue, 1, as_of => $inserted_at{deleted})");
ok(($rc != 0 && $err =~ /older than the index can answer/) || ($rc == 0 && $out eq '0'),
	"spill: as_of before the delete finds the row, or is refused (got '$out' $err)");
is($node->safe_psql('postgres', "SELECT confidence FROM engram.recall('spill_updated', $cue, 1)"),
	'0.9', 'spill: the updated row is recalled with its new confidence now');
($rc, $out, $err) = $node->psql('postgres',
	qq{SELECT distance, confidence FROM engram.recall('spill_updated', $cue, 1, as_of => $inserted_at{updated},
	   filter => '{"v": 1}')});
ok(($rc != 0 && $err =~ /older than the index can answer/) || ($rc == 0 && $out eq '0|0.5'),
	"spill: as_of before the update finds the row as it was, or is refused (got '$out' $err)");

# --- a graph file older than an update is not loaded --------------------------
# The writer prunes engram.revisions up to the revision of the file it just
# wrote, so once a newer file exists nothing may forget that an older file
# predates an update. A base backup can hold exactly that: the older file
# copied early, the table (with the update) replayed to the backup's end;
# simulated by putting the older file back while the server is stopped. An
# update keeps the id, so such a file would load and recall would answer
# with the old confidence and metadata.
my $upd = space('upd', 4);
$node->safe_psql(
	'postgres', qq{
	INSERT INTO engram.observations (space_id, embedding, confidence, metadata)
	SELECT $upd, ARRAY[g, g, g, g]::real[], 0.1, '{"consent": true}' FROM generate_series(1, 20) g});
ok(wait_stored($node), 'stale file: stored');
$node->safe_psql('postgres', 'SELECT engram.checkpoint()');
my $upd_file = graph_file($node, $upd);
copy($upd_file, "$upd_file.early") or die "copy: $!";
$node->safe_psql('postgres',
	qq{UPDATE engram.observations SET confidence = 0.9, metadata = '{"consent": false}'
	   WHERE space_id = $upd AND embedding[1] = 5});
ok(wait_stored($node), 'stale file: the update is stored');
# A newer file, written after the update.
$node->safe_psql('postgres', 'SELECT engram.checkpoint()');

# --- a forgotten vector survives no restart -----------------------------------
# A clean shutdown writes the graph file with a forgotten, not yet compacted
# node; the start loads it back. Compaction must still come due after the
# start (it once only counted forgets stored since), or the vector stays in
# memory and in the file for good. engram.spaces must not count the
# forgotten node out of observations but not out of linked (pending < 0).
my $rfx = space('rfx', 4);
my $rfx_vector = '{1111.5,2222.25,3333.125,4444.0625}';
$node->safe_psql(
	'postgres', qq{
	INSERT INTO engram.observations (space_id, embedding, content) VALUES ($rfx, '$rfx_vector', 'secret');
	INSERT INTO engram.observations (space_id, embedding, content)
	SELECT $rfx, ARRAY[g, g + 1, g + 2, g + 3]::real[], 'other' FROM generate_series(1, 50) g;});
is($node->safe_psql('postgres', "SELECT engram.wait_linked('rfx', NULL, 60000)"), 't', 'restart: linked');
$node->safe_psql('postgres', "DELETE FROM engram.observations WHERE space_id = $rfx AND content = 'secret'");
is($node->safe_psql('postgres', "SELECT forgotten FROM engram.spaces WHERE name = 'rfx'"),
	'1', 'restart: one forgotten node');
cmp_ok($node->safe_psql('postgres', "SELECT pending FROM engram.spaces WHERE name = 'rfx'"),
	'>=', 0, 'restart: engram.spaces.pending is never negative');

$node->stop;
copy("$upd_file.early", $upd_file) or die "copy: $!";
$node->start;
ok(wait_stored($node), 'after the restart: loaded');
is($node->safe_psql('postgres', "SELECT confidence FROM engram.recall('upd', '{5,5,5,5}', 1)"),
	'0.9', 'stale file: recall answers with the updated confidence after the start');
is( $node->safe_psql(
		'postgres',
		qq{SELECT count(*) FROM engram.recall('upd', '{5,5,5,5}', 20, filter => '{"consent": true}') r
		   JOIN engram.observations o USING (id) WHERE NOT o.metadata \@> '{"consent": true}'}),
	'0',
	'stale file: a filter never matches metadata the row no longer has');

$node->safe_psql('postgres', "ALTER SYSTEM SET engram.erase_within = '1s'; SELECT pg_reload_conf();");
is(poll_until($node, "SELECT forgotten FROM engram.spaces WHERE name = 'rfx'", '0', 60),
	'0', 'restart: the forgotten node is still compacted within erase_within');
is($node->safe_psql('postgres', "SELECT coalesce(sum(occurrences), 0) FROM engram.audit_erasure('$rfx_vector')"),
	'0', 'restart: the forgotten vector is gone from shared memory and files');

# --- an open delete elsewhere does not keep an erased vector in the file -----
# The writer writes no file of a space while a transaction that revised it is
# in flight; an idle open DELETE of another row of the space once kept an
# erased, committed deletion's vector in the graph file indefinitely, while
# engram.checkpoint() reported success.
my $era = space('era', 4);
my $era_vector = '{5555.5,6666.25,7777.125,8888.0625}';
$node->safe_psql(
	'postgres', qq{
	INSERT INTO engram.observations (space_id, embedding, content) VALUES ($era, '$era_vector', 'secret');
	INSERT INTO engram.observations (space_id, embedding, content)
	SELECT $era, ARRAY[g, g + 1, g + 2, g + 3]::real[], 'other' FROM generate_series(1, 50) g;});
ok(wait_stored($node), 'erasure: stored');
$node->safe_psql('postgres', 'SELECT engram.checkpoint()');
my $in_file =
  "SELECT coalesce(sum(occurrences), 0) FROM engram.audit_erasure('$era_vector') WHERE place LIKE 'engram/%'";
ok($node->safe_psql('postgres', $in_file) > 0, 'erasure: the vector is in the graph file before the delete');
my $idle = open_session($node);
session_query($idle, "BEGIN; DELETE FROM engram.observations WHERE space_id = $era AND embedding = '{1,2,3,4}'");
$node->safe_psql('postgres', "DELETE FROM engram.observations WHERE space_id = $era AND content = 'secret'");
is(poll_until($node, "SELECT forgotten FROM engram.spaces WHERE name = 'era'", '0', 60),
	'0', 'erasure: the deleted row is compacted out of shared memory');
($rc) = $node->psql('postgres', 'SELECT engram.checkpoint()');
is($rc, 0, 'erasure: engram.checkpoint() reports success');
is(poll_until($node, $in_file, '0', 30), '0',
	'erasure: the erased vector leaves the graph file although another delete of the space is open');
session_query($idle, 'COMMIT');
$idle->{h}->finish;
is(poll_until($node, $in_file, '0', 30), '0', 'erasure: and stays out once the other transaction ends');
$node->stop;

# The second node: three slots (one after its restart) and 16MB of index
# memory.
my $slots = engram_node(
	'slots',
	'engram.persist_interval' => 0,
	'engram.persist_rows' => 0,
	'engram.max_spaces' => 3,
	'engram.memory_limit' => "'16MB'",
	'engram.erase_within' => "'2s'");

# --- a compaction that finds no room backs off -------------------------------
# compact_spaces() runs at every drain (each worker wakes at least every
# 100 ms, and at every commit). A compaction that could not get the memory
# for its copy once stayed due, so it scanned the graph under the consumer
# token and logged a warning at every drain; it must wait half of
# engram.erase_within (1 s here) before trying again.
my $big = $slots->safe_psql('postgres', "SELECT engram.create_space('big', 256, 'l2', 4, 16)");
for my $batch (0 .. 6)
{
	$slots->safe_psql(
		'postgres', qq{
		INSERT INTO engram.observations (space_id, embedding)
		SELECT $big, array_fill(g::real, ARRAY[256]) FROM generate_series($batch * 1000 + 1, $batch * 1000 + 1000) g});
}
ok(wait_stored($slots), 'compaction: stored');
is($slots->safe_psql('postgres', "SELECT state FROM engram.spaces WHERE name = 'big'"), 'ready',
	'compaction: the space fits engram.memory_limit');
my $offset = log_offset($slots);
$slots->safe_psql('postgres', "DELETE FROM engram.observations WHERE space_id = $big AND embedding[1] = 1");
sleep 6;
my $warnings = () = slurp_file($slots->logfile, $offset) =~ /WARNING:  engram could not compact space "big"/g;
cmp_ok($warnings, '>', 0, 'compaction: the copy did not fit engram.memory_limit');
cmp_ok($warnings, '<=', 8, "compaction: retried about once a second, not at every drain ($warnings warnings in 6 s)");
# Its memory goes back for the next case.
$slots->safe_psql('postgres', "SELECT engram.drop_space('big')");

# --- a space that gets a slot while a delete is in flight ---------------------
# A deleting transaction is counted in its space's revisions_in_flight only
# if the space has a directory slot when it deletes, and subtracted if the
# slot exists when it ends. A slot that appears in between (here a homeless
# space placed by engram.rebuild) took a decrement it never got: the counter
# wrapped and the writer never wrote the space's file again, not even at
# engram.checkpoint(), which still reported success.
my $space_a = $slots->safe_psql('postgres', "SELECT engram.create_space('space_a', 4, 'l2')");
my $space_b = $slots->safe_psql('postgres', "SELECT engram.create_space('space_b', 4, 'l2')");
for my $sid ($space_a, $space_b)
{
	$slots->safe_psql(
		'postgres', qq{INSERT INTO engram.observations (space_id, embedding)
		SELECT $sid, ARRAY[g, g + 1, g + 2, g + 3]::real[] FROM generate_series(1, 50) g});
}
ok(wait_stored($slots), 'late slot: stored');
$slots->append_conf('postgresql.conf', "engram.max_spaces = 1\n");
$slots->restart;
is($slots->safe_psql('postgres', "SELECT state FROM engram.spaces WHERE name = 'space_b'"),
	'quarantined', 'late slot: space_b has no slot');
$slots->safe_psql('postgres', "SELECT engram.drop_space('space_a')");
my $deleter = open_session($slots);
session_query($deleter, "BEGIN; DELETE FROM engram.observations WHERE space_id = $space_b AND embedding[1] = 1");
# The dropped space's slot is freed by a worker once the drop commits.
my $rebuilt = 0;
for (1 .. 300)
{
	($rc, $out, $err) = $slots->psql('postgres', "SELECT engram.rebuild('space_b')");
	$rebuilt = $rc == 0;
	last if $rebuilt || $err !~ /the space directory is full/;
	usleep(100_000);
}
ok($rebuilt, 'late slot: space_b is rebuilt in the freed slot') or diag($err);
session_query($deleter, 'COMMIT');
$deleter->{h}->finish;
is($slots->safe_psql('postgres', "SELECT state FROM engram.spaces WHERE name = 'space_b'"),
	'ready', 'late slot: space_b is back');
$slots->safe_psql(
	'postgres', qq{INSERT INTO engram.observations (space_id, embedding)
	SELECT $space_b, ARRAY[g, g, g, g]::real[] FROM generate_series(100, 120) g});
ok(wait_stored($slots), 'late slot: stored again');
($rc) = $slots->psql('postgres', 'SELECT engram.checkpoint()');
is($rc, 0, 'late slot: engram.checkpoint() reports success');
is( poll_until(
		$slots, "SELECT file_bytes > 0 AND persisted_observations = 70 FROM engram.spaces WHERE name = 'space_b'",
		't', 30),
	't',
	"late slot: the checkpoint wrote space_b's graph file");

$slots->stop;
done_testing();
