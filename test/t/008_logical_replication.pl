# Logical replication feeds observations: a publisher cluster publishes
# engram.observations, a subscriber cluster (both with engram preloaded)
# subscribes, and the rows the apply worker writes take the same path as a
# local INSERT on the subscriber (the capture trigger fires on replicas too),
# so the subscriber's workers index them and its sessions recall them.
#
# Checked: the initial copy and then a stream of observe, observe_batch and
# rolled-back transactions on the publisher arrive; the subscriber indexes
# exactly the committed rows; a vector observed on the publisher is recalled
# on the subscriber at distance 0; and a restart of the subscriber rebuilds
# its index from the replicated table.
#
# Forgetting travels the same way: the apply worker runs with
# session_replication_role = replica and the capture trigger is ENABLE
# ALWAYS, so deletes (plain DELETE, engram.forget, engram.forget_before) and
# updates of confidence, metadata and observed_at made on the publisher reach
# the subscriber's index: a deleted row is never recalled there, an updated
# row is recalled with its new values (also through a filter or a time window
# on them) at a new generation, a recall as_of an earlier generation still
# sees the old state, and a rolled-back delete or update changes nothing.
# The same holds after the subscriber restarts.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $publisher = engram_node('publisher', wal_level => 'logical', max_wal_senders => 10, max_replication_slots => 10);
my $subscriber = engram_node('subscriber');

# The same space on both sides: observations refer to it by id.
for my $node ($publisher, $subscriber)
{
	is($node->safe_psql('postgres', "SELECT engram.create_space('shared_memory', 16, 'l2')"),
		'1', $node->name . ': the space has id 1');
}

sub cue
{
	my ($x) = @_;
	return "array_fill(${x}::real, ARRAY[16])";
}

# Rows committed before the subscription come with its initial copy.
$publisher->safe_psql('postgres',
	"SELECT engram.observe_batch('shared_memory', (SELECT array_agg(array_fill((g / 1000.0)::real, ARRAY[16])) FROM generate_series(1, 2000) g))");
$publisher->safe_psql('postgres', 'CREATE PUBLICATION memories FOR TABLE engram.observations');
my $publisher_conn = $publisher->connstr . ' dbname=postgres';
$subscriber->safe_psql('postgres', "CREATE SUBSCRIPTION memories CONNECTION '$publisher_conn' PUBLICATION memories");
$subscriber->wait_for_subscription_sync($publisher, 'memories');

# Then a stream: single observations, batches and transactions that roll back.
my $stream = '';
for my $i (1 .. 200)
{
	$stream .= "SELECT engram.observe('shared_memory', " . cue(5 + $i) . ", 'streamed $i');\n";
	$stream .= "SELECT engram.observe_batch('shared_memory', (SELECT array_agg(array_fill(((g + $i * 100) / 7.0)::real, ARRAY[16])) FROM generate_series(1, 10) g));\n"
	  if $i % 10 == 0;
	$stream .= "BEGIN; SELECT engram.observe('shared_memory', " . cue(-1000 - $i) . ", 'rolled back'); ROLLBACK;\n"
	  if $i % 25 == 0;
}
$publisher->safe_psql('postgres', $stream);
my $marker = $publisher->safe_psql('postgres', "SELECT engram.observe('shared_memory', " . cue(4242) . ", 'marker')");
$publisher->wait_for_catchup('memories');

my $committed = $publisher->safe_psql('postgres', 'SELECT count(*) FROM engram.observations');
is($committed, 2000 + 200 + 20 * 10 + 1, 'the publisher committed every observation but the rolled-back ones');
is($subscriber->safe_psql('postgres', 'SELECT count(*) FROM engram.observations'),
	$committed, 'the subscriber received every committed row');

ok($subscriber->safe_psql('postgres', "SELECT engram.wait_linked('shared_memory', NULL, 60000)") eq 't',
	'the subscriber linked what arrived');
my ($observations, $linked) =
  split /\|/, $subscriber->safe_psql('postgres', "SELECT observations, linked FROM engram.spaces WHERE name = 'shared_memory'");
is($observations, $committed, 'the subscriber indexes exactly the committed rows');
is($linked, $committed, 'and all of them are linked');
check_converged($subscriber, 'subscriber');

is($subscriber->safe_psql('postgres', "SELECT id || ' ' || distance FROM engram.recall('shared_memory', " . cue(4242) . ', 1)'),
	"$marker 0", 'a vector observed on the publisher is recalled on the subscriber');
is($subscriber->safe_psql('postgres', "SELECT count(*) FROM engram.recall('shared_memory', " . cue(-1025) . ", 50) r
	JOIN engram.observations o USING (id) WHERE o.content = 'rolled back'"),
	'0', 'nothing rolled back on the publisher is recalled on the subscriber');

# A restart of the subscriber rebuilds its index from the replicated table.
$subscriber->restart;
is($subscriber->safe_psql('postgres', "SELECT id || ' ' || distance FROM engram.recall('shared_memory', " . cue(4242) . ', 1)'),
	"$marker 0", 'after a restart the subscriber still recalls it');
check_converged($subscriber, 'subscriber after restart');

# Replication continues after the restart.
my $after = $publisher->safe_psql('postgres', "SELECT engram.observe('shared_memory', " . cue(777) . ", 'after restart')");
$publisher->wait_for_catchup('memories');
is($subscriber->safe_psql('postgres', "SELECT id FROM engram.recall('shared_memory', " . cue(777) . ', 1)'),
	$after, 'an observation made after the restart arrives and is recalled');

# --- Forgetting and updates on the publisher reach the subscriber's index ---
# Rows "forget 1..21" lie on the diagonal at 50000 + 10 j (40 apart, far from
# everything above), with metadata {"group": "f", "j": j}; rows "old 1..5",
# observed in 2001, lie at 60000 + 10 j.
sub forget_x { return 50000 + 10 * $_[0]; }
sub old_x { return 60000 + 10 * $_[0]; }
$publisher->safe_psql('postgres', q{
	INSERT INTO engram.observations (space_id, embedding, content, confidence, metadata)
	SELECT engram._space_id('shared_memory'), array_fill((50000 + 10 * j)::real, ARRAY[16]), 'forget ' || j, 0.5,
		   jsonb_build_object('group', 'f', 'j', j)
	FROM generate_series(1, 20) j;
	INSERT INTO engram.observations (space_id, embedding, content, metadata, observed_at)
	SELECT engram._space_id('shared_memory'), array_fill((60000 + 10 * j)::real, ARRAY[16]), 'old ' || j,
		   '{"group": "old"}', timestamptz '2001-01-01 00:00+00' + j * interval '1 day'
	FROM generate_series(1, 5) j;});
my %id = map { split /\|/ } split /\n/,
  $publisher->safe_psql('postgres', "SELECT content, id FROM engram.observations WHERE content ~ '^(forget|old) '");
$publisher->wait_for_catchup('memories');
ok($subscriber->safe_psql('postgres', "SELECT engram.wait_linked('shared_memory', NULL, 60000)") eq 't',
	'the subscriber linked the rows to forget');

# The nearest row to the diagonal point x on the subscriber: "id distance
# confidence", or '' when recall returns nothing; $args are further recall
# arguments (e.g. ", as_of => 7").
sub nearest_on
{
	my ($node, $x, $args) = @_;
	$args //= '';
	return $node->safe_psql('postgres',
		"SELECT id || ' ' || distance || ' ' || confidence FROM engram.recall('shared_memory', " . cue($x) . ", 1$args)");
}
for my $j (1 .. 20)
{
	is(nearest_on($subscriber, forget_x($j)), "$id{\"forget $j\"} 0 0.5", "forget $j arrived on the subscriber");
}
is(nearest_on($subscriber, old_x(3)), "$id{'old 3'} 0 0.7", 'old 3 arrived on the subscriber');
my $before_forgetting = $subscriber->safe_psql('postgres', "SELECT engram.current_generation('shared_memory')");

# On the publisher, each in a transaction of its own: a plain DELETE,
# forget(), forget_before(), updates of confidence, metadata and observed_at,
# a transaction that deletes and updates and rolls back, one that observes,
# deletes and rewords, and one whose savepoint rolls a delete back.
is($publisher->safe_psql('postgres', "DELETE FROM engram.observations WHERE content = 'forget 1' RETURNING id"),
	$id{'forget 1'}, 'publisher: DELETE of forget 1');
is($publisher->safe_psql('postgres', "SELECT engram.forget('shared_memory', ARRAY[$id{'forget 2'}, $id{'forget 3'}, -1])"),
	2, 'publisher: forget() of forget 2 and 3 deletes two rows');
is($publisher->safe_psql('postgres', "SELECT engram.forget_before('shared_memory', '2002-01-01 00:00+00')"),
	5, 'publisher: forget_before(2002) deletes the five old rows');
$publisher->safe_psql('postgres', "UPDATE engram.observations SET confidence = 0.99 WHERE content = 'forget 4'");
$publisher->safe_psql('postgres',
	"UPDATE engram.observations SET metadata = metadata || '{\"flag\": \"updated\"}' WHERE content = 'forget 5'");
$publisher->safe_psql('postgres',
	"UPDATE engram.observations SET observed_at = '2200-01-01 00:00+00' WHERE content = 'forget 6'");
$publisher->safe_psql('postgres', qq{
	BEGIN;
	DELETE FROM engram.observations WHERE content = 'forget 7';
	SELECT engram.forget('shared_memory', ARRAY[$id{'forget 8'}]);
	UPDATE engram.observations SET confidence = 0.01, metadata = '{"group": "gone"}' WHERE content = 'forget 9';
	ROLLBACK;});
$publisher->safe_psql('postgres', qq{
	BEGIN;
	INSERT INTO engram.observations (space_id, embedding, content, confidence, metadata)
	VALUES (engram._space_id('shared_memory'), array_fill(50210::real, ARRAY[16]), 'forget 21', 0.5,
			'{"group": "f", "j": 21}');
	DELETE FROM engram.observations WHERE content = 'forget 10';
	UPDATE engram.observations SET content = 'forget 11 reworded' WHERE content = 'forget 11';
	COMMIT;});
$publisher->safe_psql('postgres', q{
	BEGIN;
	SAVEPOINT keep;
	DELETE FROM engram.observations WHERE content = 'forget 12';
	ROLLBACK TO SAVEPOINT keep;
	DELETE FROM engram.observations WHERE content = 'forget 13';
	COMMIT;});
$id{'forget 21'} = $publisher->safe_psql('postgres', "SELECT id FROM engram.observations WHERE content = 'forget 21'");
$publisher->wait_for_catchup('memories');
ok($subscriber->safe_psql('postgres', "SELECT engram.wait_linked('shared_memory', NULL, 60000)") eq 't',
	'the subscriber caught up with the deletes and updates');

my @deleted = map { $id{$_} } ('forget 1', 'forget 2', 'forget 3', 'forget 10', 'forget 13', map { "old $_" } 1 .. 5);
my $deleted_ids = '{' . join(',', @deleted) . '}';
is($subscriber->safe_psql('postgres', "SELECT count(*) FROM engram.observations WHERE id = ANY ('$deleted_ids')"),
	0, 'the subscriber applied every delete to its table');
is($subscriber->safe_psql('postgres', 'SELECT count(*) FROM engram.observations'),
	$publisher->safe_psql('postgres', 'SELECT count(*) FROM engram.observations'),
	'the subscriber has as many rows as the publisher');

# What the subscriber's recall says about the forgotten and updated rows;
# run again after a restart.
sub check_forgetting
{
	my ($label) = @_;
	for my $j (1, 2, 3, 10, 13)
	{
		isnt(nearest_on($subscriber, forget_x($j)) =~ s/ .*//r, $id{"forget $j"},
			"$label: forget $j, deleted on the publisher, is not recalled at its own vector");
	}
	for my $j (1 .. 5)
	{
		isnt(nearest_on($subscriber, old_x($j)) =~ s/ .*//r, $id{"old $j"},
			"$label: old $j, retired by forget_before on the publisher, is not recalled");
	}
	# Recall over the whole space (k above its size) returns every live row
	# and no deleted one.
	my ($returned, $forgotten, $live, $missing) = split /\|/, $subscriber->safe_psql('postgres', qq{
		WITH r AS (SELECT id FROM engram.recall('shared_memory', } . cue(50000) . qq{, 10000))
		SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM r WHERE id = ANY ('$deleted_ids')),
			   (SELECT count(*) FROM engram.observations),
			   (SELECT count(*) FROM engram.observations o WHERE NOT EXISTS (SELECT 1 FROM r WHERE r.id = o.id))});
	is($forgotten, 0, "$label: a recall of the whole space returns no deleted row");
	is($returned, $live, "$label: a recall of the whole space returns all $live live rows");
	is($missing, 0, "$label: every live row is among them");

	is(nearest_on($subscriber, forget_x(4)), "$id{'forget 4'} 0 0.99",
		"$label: forget 4 is recalled with its updated confidence");
	is($subscriber->safe_psql('postgres', "SELECT string_agg(id::text, ',') FROM engram.recall('shared_memory', "
			. cue(50000) . ", 10, min_confidence => 0.95)"),
		$id{'forget 4'}, "$label: min_confidence 0.95 finds forget 4 alone");
	is($subscriber->safe_psql('postgres', "SELECT string_agg(id::text, ',') FROM engram.recall('shared_memory', "
			. cue(0) . ", 10, filter => '{\"flag\": \"updated\"}')"),
		$id{'forget 5'}, "$label: a filter on the updated metadata finds forget 5, and it alone");
	is($subscriber->safe_psql('postgres', "SELECT string_agg(id || ' ' || extract(epoch FROM observed_at)::bigint, ',') "
			. "FROM engram.recall('shared_memory', " . cue(0) . ", 10, observed_after => '2199-12-31 00:00+00')"),
		"$id{'forget 6'} 7258118400", "$label: a window on the updated observed_at finds forget 6, and it alone, at 2200-01-01");
	# The group "f" through a filter: exactly its live rows, nearest first.
	my $live_group = join(',', map { $id{"forget $_"} } grep { !/^(1|2|3|10|13)$/ } 1 .. 21);
	is($subscriber->safe_psql('postgres', "SELECT string_agg(id::text, ',' ORDER BY distance) FROM engram.recall('shared_memory', "
			. cue(50000) . ", 100, filter => '{\"group\": \"f\"}')"),
		$live_group, "$label: the filter on group f returns exactly its 16 live rows, nearest first");
	is($subscriber->safe_psql('postgres', "SELECT count(*) FROM engram.recall('shared_memory', "
			. cue(60000) . ", 100, filter => '{\"group\": \"old\"}')"),
		0, "$label: the filter on group old returns nothing: all its rows were retired");

	for my $j (7, 8, 12)
	{
		is(nearest_on($subscriber, forget_x($j)), "$id{\"forget $j\"} 0 0.5",
			"$label: forget $j, whose delete rolled back, is still recalled");
	}
	is(nearest_on($subscriber, forget_x(9)), "$id{'forget 9'} 0 0.5",
		"$label: forget 9, whose update rolled back, keeps its confidence");
	is(nearest_on($subscriber, forget_x(9), ", filter => '{\"group\": \"f\"}'"), "$id{'forget 9'} 0 0.5",
		"$label: and its metadata");
	is(nearest_on($subscriber, forget_x(11)), "$id{'forget 11'} 0 0.5",
		"$label: forget 11, whose content alone changed, is recalled as before");
	is(nearest_on($subscriber, forget_x(21)), "$id{'forget 21'} 0 0.5",
		"$label: forget 21, observed in the transaction that deleted forget 10, is recalled");
	return;
}
check_forgetting('subscriber');

# The updated rows carry the generation of their update; a snapshot from
# before the forgetting still sees the deleted rows and the old values.
cmp_ok($subscriber->safe_psql('postgres', "SELECT generation FROM engram.recall('shared_memory', " . cue(forget_x(4)) . ', 1)'),
	'>', $before_forgetting, 'subscriber: the updated forget 4 carries a generation after the forgetting began');
for my $j (1, 4, 10)
{
	is(nearest_on($subscriber, forget_x($j), ", as_of => $before_forgetting"), "$id{\"forget $j\"} 0 0.5",
		"subscriber: as of the generation before the forgetting, forget $j is recalled as it was");
}
is(nearest_on($subscriber, old_x(2), ", as_of => $before_forgetting"), "$id{'old 2'} 0 0.7",
	'subscriber: as of the generation before the forgetting, old 2 is recalled');
is($subscriber->safe_psql('postgres', "SELECT count(*) FROM engram.recall('shared_memory', " . cue(0)
		. ", 10, as_of => $before_forgetting, filter => '{\"flag\": \"updated\"}')"),
	0, 'subscriber: as of the generation before the forgetting, no row has the updated metadata');
check_stored_sets($subscriber, 'subscriber after the forgetting');

# The forgetting survives a restart of the subscriber (graph file or rebuild
# from the table, whichever the start chooses).
$subscriber->restart;
ok(wait_serving($subscriber, 'shared_memory', '{' . join(',', (777) x 16) . '}', 1),
	'the subscriber answers again after its restart');
check_forgetting('subscriber after a restart');
check_stored_sets($subscriber, 'subscriber after the forgetting and a restart');

$subscriber->log_check('no crash on the subscriber', 0, log_unlike => [qr/PANIC|TRAP:|terminated by signal/]);
done_testing();
