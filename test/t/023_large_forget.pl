# Forgetting is not refused for the index's bookkeeping: a DELETE of rows
# whose ids are not consecutive (one tenant's rows in a shared space) makes
# one forget range per row, more than a transaction's ring records may carry
# with a 1MB ring (about 32,700 ranges); such forgets are spilled to
# engram._forget_spill in the deleting transaction and read back by the
# worker (src/pg/forget_spill.hpp).
#
# 100,000 rows of two tenants, interleaved (row g has the vector [g, -g] and
# belongs to tenant u<g % 2>). Then:
#   - a full delete of tenant u1 that rolls back, and one under a savepoint
#     rolled back to, hide nothing and leave no spill behind;
#   - tenant u1's rows up to g = 72,000 are deleted by 36 subtransactions of
#     1,000 rows each (each below the spill threshold of 8,192 ranges, so the
#     spill is written at pre-commit; unspilled, 36,000 ranges would exceed
#     the limit), committing at G1;
#   - the rest of tenant u1 (14,000 rows) in one statement, spilled while it
#     runs, committing at G2.
# Recall k = 1 at the vector of row g answers row g at distance 0 exactly
# when row g is visible at the recall's generation: the deleted rows are
# hidden from their delete's generation on and found as_of the generation
# before it; tenant u0 is intact. A logical replication subscriber (also with
# a 1MB ring) applies both deletes, spilling them in its apply worker, and
# ends with the same rows in its index. Then a clean restart and a crash (immediate
# stop), each with a stale chunk planted in engram._forget_spill: the start
# clears it without forgetting its ids, and the index holds exactly the rows
# of the table.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = engram_node('large_forget', 'engram.ring_size' => "'1MB'", wal_level => 'logical', max_wal_senders => 10,
	max_replication_slots => 10);
my $subscriber = engram_node('large_forget_subscriber', 'engram.ring_size' => "'1MB'");
my $sid = $node->safe_psql('postgres', "SELECT engram.create_space('tenants', 2, 'l2', 4, 16)");
is($subscriber->safe_psql('postgres', "SELECT engram.create_space('tenants', 2, 'l2', 4, 16)"),
	$sid, 'the subscriber has the same space');
$node->safe_psql('postgres', 'CREATE PUBLICATION tenants FOR TABLE engram.observations');
$subscriber->safe_psql('postgres',
	"CREATE SUBSCRIPTION tenants CONNECTION '" . $node->connstr . " dbname=postgres' PUBLICATION tenants");
$subscriber->wait_for_subscription_sync($node, 'tenants');
for my $batch (0 .. 9)
{
	$node->safe_psql('postgres', qq{
		INSERT INTO engram.observations (space_id, embedding, metadata)
		SELECT $sid, ARRAY[g, -g]::real[], jsonb_build_object('user', 'u' || g % 2)
		FROM generate_series($batch * 10000 + 1, $batch * 10000 + 10000) g});
}
ok(wait_stored($node), 'stored');
$node->wait_for_catchup('tenants');
for my $n ($node, $subscriber)
{
	$n->safe_psql('postgres', qq{
		CREATE TABLE rows_of (g int PRIMARY KEY, id bigint NOT NULL);
		INSERT INTO rows_of SELECT embedding[1]::int, id FROM engram.observations});
}
is($subscriber->safe_psql('postgres', 'SELECT count(*) FROM rows_of'), 100000, 'the subscriber received the rows');

sub live
{
	my ($n) = @_;
	$n //= $node;
	return $n->safe_psql('postgres', "SELECT observations FROM engram.spaces WHERE name = 'tenants'");
}

sub spill_rows
{
	my ($n) = @_;
	$n //= $node;
	return $n->safe_psql('postgres', 'SELECT count(*) FROM engram._forget_spill');
}

# Whether every spill chunk is gone (the worker deletes them in its drain
# transaction, which commits right after the records are consumed).
sub spill_cleared
{
	my ($n) = @_;
	for (1 .. 600)
	{
		return 1 if spill_rows($n) == 0;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

# "visible" when recall (at the generation given, or the latest) answers
# row g itself at distance 0, "hidden" otherwise.
sub seen
{
	my ($g, $as_of, $n) = @_;
	$n //= $node;
	my $at = defined $as_of ? ", as_of => $as_of" : '';
	my $answer = $n->safe_psql('postgres', qq{
		SELECT r.id = (SELECT id FROM rows_of WHERE g = $g) AND r.distance = 0
		FROM engram.recall('tenants', ARRAY[$g, -$g]::real[], 1$at) r});
	return $answer eq 't' ? 'visible' : 'hidden';
}

my @early = (101, 35001, 71999);    # deleted at G1
my @late = (72001, 85001, 99999);   # deleted at G2
my @kept = (100, 50000, 100000);    # tenant u0

# Rolled back: nothing hidden, nothing left in the spill.
my ($rc, $out, $err) = $node->psql('postgres', qq{
	BEGIN;
	DELETE FROM engram.observations WHERE space_id = $sid AND metadata \@> '{"user": "u1"}';
	SELECT count(*) > 0 FROM engram._forget_spill;
	ROLLBACK;}, on_error_stop => 1);
is($rc, 0, 'a delete of 50,000 interleaved rows runs') or diag($err);
is($out, 't', 'its forgets went to engram._forget_spill while it ran');
($rc, $out, $err) = $node->psql('postgres', qq{
	BEGIN;
	SAVEPOINT s;
	DELETE FROM engram.observations WHERE space_id = $sid AND metadata \@> '{"user": "u1"}';
	ROLLBACK TO s;
	COMMIT;}, on_error_stop => 1);
is($rc, 0, 'the same delete under a savepoint rolled back to commits') or diag($err);
ok(wait_stored($node), 'stored after the rollbacks');
is(live(), 100000, 'rolled back deletes hide nothing');
is(spill_rows(), 0, 'and leave nothing in engram._forget_spill');
is(seen($_), 'visible', "row $_ is found after the rollbacks") for (@early, @late);

# 36 subtransactions of 1,000 interleaved rows each: spilled at pre-commit.
my $g1 = $node->safe_psql('postgres', qq{
	DO \$\$
	BEGIN
		FOR b IN 0 .. 35 LOOP
			BEGIN
				DELETE FROM engram.observations o USING rows_of r
				 WHERE o.id = r.id AND r.g % 2 = 1 AND r.g > b * 2000 AND r.g <= (b + 1) * 2000;
			EXCEPTION WHEN division_by_zero THEN NULL;
			END;
		END LOOP;
	END
	\$\$;
	SELECT engram.current_generation('tenants');});
ok(spill_cleared(), 'the worker deleted the chunks of the first delete');
is(live(), 64000, 'the first delete forgot 36,000 rows');
is(seen($_, $g1 - 1), 'visible', "row $_ is found as_of the generation before its delete") for @early;
is(seen($_, $g1), 'hidden', "row $_ is hidden at its delete's generation") for @early;
is(seen($_, $g1), 'visible', "row $_ is still found at the first delete's generation") for @late;

# One statement, 14,000 interleaved rows: spilled while it runs, by a role
# that may only read and delete observations (the trigger writes the spill
# as the tables' owner).
$node->safe_psql('postgres', q{
	CREATE ROLE tenant_admin;
	GRANT USAGE ON SCHEMA engram TO tenant_admin;
	GRANT SELECT, DELETE ON engram.observations TO tenant_admin;});
($rc, $out, $err) = $node->psql('postgres', qq{
	SET ROLE tenant_admin;
	DELETE FROM engram.observations WHERE space_id = $sid AND metadata \@> '{"user": "u1"}';
	RESET ROLE;
	SELECT engram.current_generation('tenants');}, on_error_stop => 1);
is($rc, 0, "the rest of tenant u1's rows are deleted in one statement") or diag($err);
my $g2 = (split /\n/, $out)[-1];
ok($g2 > $g1, 'at a later generation');
ok(spill_cleared(), 'the worker deleted the chunks of the second delete');
is(live(), 50000, 'tenant u1 is forgotten');
is(seen($_, $g2 - 1), 'visible', "row $_ is found as_of the generation before its delete") for @late;
is(seen($_, $g2), 'hidden', "row $_ is hidden at its delete's generation") for @late;
is(seen($_), 'hidden', "row $_ is hidden after it") for (@early, @late);
is(seen($_), 'visible', "tenant u0's row $_ is intact") for @kept;
my $leak_query = q{
	SELECT count(*) FROM rows_of r, LATERAL engram.recall('tenants', ARRAY[r.g, -r.g]::real[], 5) a
	WHERE r.g % 200 = 1 AND a.id IN (SELECT id FROM rows_of WHERE g % 2 = 1)};
is($node->safe_psql('postgres', $leak_query), 0, 'no recall near 500 deleted rows returns a deleted row');
check_stored_sets($node, 'after the deletes');

# The subscriber applied both deletes, each as one transaction of its apply
# worker (the subtransactions of the first are not replicated as such).
$node->wait_for_catchup('tenants');
ok(wait_stored($subscriber), 'the subscriber stored what it applied');
ok(spill_cleared($subscriber), "the subscriber's worker deleted its chunks");
is(live($subscriber), 50000, 'the subscriber forgot tenant u1');
is(seen($_, undef, $subscriber), 'hidden', "row $_ is hidden on the subscriber") for (@early, @late);
is(seen($_, undef, $subscriber), 'visible', "tenant u0's row $_ is intact on the subscriber") for @kept;
is($subscriber->safe_psql('postgres', $leak_query), 0, 'no recall on the subscriber returns a deleted row');
check_stored_sets($subscriber, 'subscriber');
$subscriber->stop;

# A stale chunk naming tenant u0's rows, as a record lost with the ring
# would leave: a start clears it and forgets nothing.
sub plant_stale_chunk
{
	$node->safe_psql('postgres', qq{
		INSERT INTO engram._forget_spill (spill, space_id, chunk, ranges)
		SELECT 1, $sid, 1, array_agg(v ORDER BY g, k) FROM rows_of, LATERAL (VALUES (1, id), (2, id)) p(k, v)
		WHERE g % 2 = 0 AND g <= 2000});
	return;
}
plant_stale_chunk();
$node->restart;
ok(wait_stored($node), 'stored after a restart');
is(spill_rows(), 0, 'a start clears engram._forget_spill');
is(live(), 50000, 'the index holds the 50,000 rows of the table after a restart');
is(seen($_), 'hidden', "row $_ stays hidden after a restart") for (@early, @late);
is(seen($_), 'visible', "tenant u0's row $_ is found after a restart") for (@kept, 2000);
check_stored_sets($node, 'after a restart');

plant_stale_chunk();
$node->stop('immediate');
$node->start;
ok(wait_stored($node), 'stored after a crash');
is(spill_rows(), 0, 'no chunk survives a crash');
is(live(), 50000, 'the index holds the 50,000 rows of the table after a crash');
is(seen($_), 'visible', "tenant u0's row $_ is found after a crash") for (@kept, 2000);
check_stored_sets($node, 'after a crash');

done_testing();
