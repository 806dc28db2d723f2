# Forgetting under load: four pgbench clients observe, insert, delete (plain
# DELETE, engram.forget, engram.forget_before), update confidence, metadata,
# content and observed_at, and roll back transactions that do all of these,
# while two more clients recall without pause; every answer is checked inside
# the server (engram_test.check_recall raises an error on the first
# violation, which pgbench counts as a failed client). Two phases of about
# 15 s each: space "churn" with linking running (and compactions every
# second or so, engram.erase_within = 2s), then space "tail" with linking
# paused (engram.pause_linking), where every answer comes from the exact scan
# of the unlinked tail and must therefore be the exact top k.
#
# Soundness. A recall answers at one generation G, which the checking
# queries' MVCC snapshots do not know. Triggers of this test on
# engram.observations record, in the writing transaction itself, every row
# born (engram_test.born) and every row deleted (engram_test.deleted, with
# its vector); right after the commit the writer stamps them with
# engram.current_generation(), which waits for the session's own commit to be
# published, so the stamp is at or after the commit's generation. The
# checker takes g0 = engram.current_generation() before the recall, so
# G >= g0 (G = g0 for the recalls as_of g0), and checks after it, when every
# commit published by G is visible to its snapshot (a commit is published
# after it became visible). Hence:
#   - a returned id must be born in this space (a rolled-back row has no
#     born row) and must not be deleted with a stamp <= g0;
#   - k rows, nearest first, none twice, at the distance of its vector, with
#     a confidence the row has had, a generation no newer than the recall
#     could see, and through the filter {"tag": "base"} only base rows (no
#     committed row but the base ever has that tag; rolled-back updates set
#     it);
#   - in the tail phase: no row that is in the table now (so not deleted at
#     G) and was born with a stamp <= g0 (so present at G) lies nearer than
#     the k-th answer.
# 200 base rows per space are never deleted (only their confidence is
# updated), so every recall has at least k = 100 candidates.
#
# At the end: no client failed, no backend or worker crashed, the table holds
# exactly the rows born and not deleted, and once linking resumes every
# space stores exactly the ids of its rows (engram.stored_ids).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use EngramTest;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = engram_node(
	'forget_load',
	'engram.ring_size' => "'32MB'",
	'engram.erase_within' => "'2s'",
	log_min_messages => 'debug1',    # to count the compactions
	max_connections => 30);
my $dim = 16;
my $start = log_offset($node);

$node->safe_psql('postgres', qq{
	CREATE SCHEMA engram_test;

	-- A deterministic vector per seed.
	CREATE FUNCTION engram_test.vec(seed bigint) RETURNS real[]
	LANGUAGE sql IMMUTABLE AS
	\$\$ SELECT array_agg(sin(seed * 0.000731 + g * 1.37)::real ORDER BY g) FROM generate_series(1, $dim) g \$\$;

	CREATE FUNCTION engram_test.l2(a real[], b real[]) RETURNS float8
	LANGUAGE sql IMMUTABLE AS
	\$\$ SELECT sqrt(sum((x::float8 - y::float8) ^ 2)) FROM unnest(a, b) t(x, y) \$\$;

	-- What the writers did, recorded in their own transactions; gen is
	-- stamped after the commit (engram_test.settle).
	CREATE TABLE engram_test.born (id bigint PRIMARY KEY, space_id int NOT NULL, xid bigint NOT NULL, gen bigint,
								   confidence real NOT NULL);
	CREATE INDEX ON engram_test.born (xid);
	CREATE TABLE engram_test.deleted (id bigint PRIMARY KEY, space_id int NOT NULL, xid bigint NOT NULL, gen bigint,
									  embedding real[] NOT NULL);
	CREATE INDEX ON engram_test.deleted (xid);
	CREATE TABLE engram_test.confidences (id bigint NOT NULL, confidence real NOT NULL);
	CREATE INDEX ON engram_test.confidences (id);
	CREATE TABLE engram_test.refused (g0 bigint, message text);

	CREATE FUNCTION engram_test.note() RETURNS trigger
	LANGUAGE plpgsql AS \$\$
	BEGIN
		PERFORM set_config('engram_test.last_xid', txid_current()::text, false);
		IF TG_OP = 'INSERT' THEN
			INSERT INTO engram_test.born VALUES (NEW.id, NEW.space_id, txid_current(), NULL, NEW.confidence);
		ELSIF TG_OP = 'DELETE' THEN
			INSERT INTO engram_test.deleted VALUES (OLD.id, OLD.space_id, txid_current(), NULL, OLD.embedding);
		ELSIF NEW.confidence IS DISTINCT FROM OLD.confidence THEN
			INSERT INTO engram_test.confidences VALUES (NEW.id, NEW.confidence);
		END IF;
		RETURN NULL;
	END \$\$;
	CREATE TRIGGER note AFTER INSERT OR UPDATE OR DELETE ON engram.observations
		FOR EACH ROW EXECUTE FUNCTION engram_test.note();

	-- After a writing transaction: stamp what it recorded with a generation
	-- at or after its commit's.
	CREATE FUNCTION engram_test.settle(space text) RETURNS void
	LANGUAGE plpgsql AS \$\$
	DECLARE
		x bigint := nullif(current_setting('engram_test.last_xid', true), '')::bigint;
		g bigint;
	BEGIN
		IF x IS NULL THEN
			RETURN;
		END IF;
		g := engram.current_generation(space);
		UPDATE engram_test.born SET gen = g WHERE xid = x AND gen IS NULL;
		UPDATE engram_test.deleted SET gen = g WHERE xid = x AND gen IS NULL;
	END \$\$;

	-- Read-your-writes for forgetting: the rows the session's last
	-- transaction deleted are not recalled at their own vectors.
	CREATE FUNCTION engram_test.check_gone(space text) RETURNS void
	LANGUAGE plpgsql AS \$\$
	DECLARE
		x bigint := nullif(current_setting('engram_test.last_xid', true), '')::bigint;
		d record;
	BEGIN
		FOR d IN SELECT * FROM engram_test.deleted WHERE xid = x LOOP
			IF EXISTS (SELECT 1 FROM engram.recall(space, d.embedding, 3) r WHERE r.id = d.id) THEN
				RAISE EXCEPTION 'read-your-writes violated: row % deleted by the previous transaction (stamped %) is recalled',
					d.id, d.gen;
			END IF;
		END LOOP;
	END \$\$;

	-- An id at a random point (r in 0..999999) of the space's non-base ids.
	CREATE FUNCTION engram_test.pick(space text, r int) RETURNS bigint
	LANGUAGE sql STABLE AS \$\$
		SELECT lo + (hi - lo) * r / 1000000
		FROM (SELECT min(id) lo, max(id) hi FROM engram.observations
			  WHERE space_id = engram._space_id(space) AND content <> 'base') s \$\$;

	-- forget() of up to n non-base rows this transaction locked first, so
	-- that it must delete exactly them.
	CREATE FUNCTION engram_test.forget_some(space text, r int, n int) RETURNS bigint
	LANGUAGE plpgsql AS \$\$
	DECLARE
		ids bigint[];
		got bigint;
	BEGIN
		SELECT array_agg(id) INTO ids
		FROM (SELECT id FROM engram.observations
			  WHERE space_id = engram._space_id(space) AND content <> 'base' AND id >= engram_test.pick(space, r)
			  ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED) s;
		got := engram.forget(space, coalesce(ids, '{}'));
		IF got <> coalesce(cardinality(ids), 0) THEN
			RAISE EXCEPTION 'engram.forget deleted % of the % rows it was given, all locked by the caller',
				got, cardinality(ids);
		END IF;
		RETURN got;
	END \$\$;

	-- One checked recall: see the top of the file.
	CREATE FUNCTION engram_test.check_recall(space text, cue real[], k int, exact boolean, f jsonb, at_g0 boolean)
	RETURNS void LANGUAGE plpgsql AS \$\$
	DECLARE
		sid int := engram._space_id(space);
		g0 bigint := engram.current_generation(space);
		g1 bigint;
		ids bigint[];
		dists real[];
		confs real[];
		gens bigint[];
		n int;
		bad record;
		message text;
	BEGIN
		BEGIN
			SELECT coalesce(array_agg(r.id ORDER BY r.ord), '{}'), array_agg(r.distance ORDER BY r.ord),
				   array_agg(r.confidence ORDER BY r.ord), array_agg(r.generation ORDER BY r.ord)
			INTO ids, dists, confs, gens
			FROM engram.recall(space, cue, k, as_of => CASE WHEN at_g0 THEN g0 END, filter => f)
				 WITH ORDINALITY r(id, distance, score, confidence, generation, observed_at, ord);
		EXCEPTION WHEN invalid_parameter_value THEN
			-- A compaction after g0 may have made it unanswerable.
			GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
			IF NOT at_g0 OR message NOT LIKE '%older than the index can answer%' THEN
				RAISE;
			END IF;
			INSERT INTO engram_test.refused VALUES (g0, message);
			RETURN;
		END;
		g1 := engram.current_generation(space);
		n := cardinality(ids);
		IF n <> k THEN
			RAISE EXCEPTION 'recall (k %, filter %, as of %) returned % rows', k, f, g0, n;
		END IF;
		FOR i IN 2 .. n LOOP
			IF dists[i] < dists[i - 1] THEN
				RAISE EXCEPTION 'results out of order: % after %', dists[i], dists[i - 1];
			END IF;
		END LOOP;
		IF (SELECT count(DISTINCT x) FROM unnest(ids) x) <> n THEN
			RAISE EXCEPTION 'recall returned an id twice: %', ids;
		END IF;

		SELECT a.id, a.distance, a.confidence, a.generation, b.id AS born_id, b.space_id, d.gen AS deleted_at,
			   engram_test.l2(coalesce(o.embedding, d.embedding), cue) AS true_distance, o.content
		INTO bad
		FROM unnest(ids, dists, confs, gens) a(id, distance, confidence, generation)
		LEFT JOIN engram_test.born b ON b.id = a.id
		LEFT JOIN engram_test.deleted d ON d.id = a.id
		LEFT JOIN engram.observations o ON o.id = a.id
		WHERE b.id IS NULL OR b.space_id <> sid
		   OR d.gen <= g0
		   OR (o.id IS NULL) = (d.id IS NULL)
		   OR abs(a.distance - engram_test.l2(coalesce(o.embedding, d.embedding), cue))
			  > 1e-3 * greatest(1, a.distance)
		   OR (a.confidence <> b.confidence
			   AND NOT EXISTS (SELECT 1 FROM engram_test.confidences c WHERE c.id = a.id AND c.confidence = a.confidence))
		   OR a.generation > CASE WHEN at_g0 THEN g0 ELSE g1 END
		   OR (f IS NOT NULL AND o.content IS DISTINCT FROM 'base')
		LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION 'recall (k %, filter %, generation >= %) returned a row it must not: %', k, f, g0, row_to_json(bad);
		END IF;

		IF NOT exact THEN
			RETURN;
		END IF;
		SELECT o.id, x.distance, b.gen AS born_at
		INTO bad
		FROM engram.observations o
		JOIN engram_test.born b ON b.id = o.id
		CROSS JOIN LATERAL (SELECT engram_test.l2(o.embedding, cue) AS distance) x
		WHERE o.space_id = sid AND o.id <> ALL (ids) AND b.gen <= g0
		  AND (f IS NULL OR o.content = 'base')
		  AND x.distance < dists[n] - 1e-4 * greatest(1, dists[n])
		LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION 'recall (k %, filter %, generation >= %) from the unlinked tail missed live row % (born by %) at distance %, nearer than its k-th at %',
				k, f, g0, bad.id, bad.born_at, bad.distance, dists[n];
		END IF;
	END \$\$;
});

my $bindir = $ENV{PG_BINDIR} // '';
my $pgbench = -x "$bindir/pgbench" ? "$bindir/pgbench" : 'pgbench';
my @connection = ('-h', $node->host, '-p', $node->port, 'postgres');

# Creates a space with 200 base rows (tag "base", never deleted) and 2,000
# more; returns its id.
sub create_space
{
	my ($space) = @_;
	my $id = $node->safe_psql('postgres', qq{
		SELECT engram.create_space('$space', $dim, 'l2');
		INSERT INTO engram.observations (space_id, embedding, content, metadata)
		SELECT engram._space_id('$space'), engram_test.vec(i), 'base', '{"tag": "base"}' FROM generate_series(1, 200) i;
		SELECT engram_test.settle('$space');
		INSERT INTO engram.observations (space_id, embedding, content, metadata)
		SELECT engram._space_id('$space'), engram_test.vec(1000000 + i), 'start', '{"tag": "b"}' FROM generate_series(1, 2000) i;
		SELECT engram_test.settle('$space');
		SELECT engram._space_id('$space');});
	ok(wait_stored($node), "$space: the start rows are stored");
	return $id;
}

# The writers' scripts for a space: pgbench -f options.
sub writer_scripts
{
	my ($space) = @_;
	my $pick = "SELECT id FROM engram.observations WHERE space_id = engram._space_id('$space') AND content <> 'base'"
	  . " AND id >= engram_test.pick('$space', :r) ORDER BY id";
	my %scripts = (
		observe => [ 3, qq{
\\set seed random(1, 1000000000)
SELECT engram.observe('$space', engram_test.vec(:seed), 'observe', 0.7, jsonb_build_object('tag', 't' || (:seed % 5)));
SELECT engram_test.settle('$space');
} ],
		insert => [ 2, qq{
\\set seed random(1, 1000000000)
INSERT INTO engram.observations (space_id, embedding, content, metadata)
SELECT engram._space_id('$space'), engram_test.vec(:seed + i), 'insert', '{"tag": "b"}' FROM generate_series(1, 8) i;
SELECT engram_test.settle('$space');
} ],
		delete => [ 2, qq{
\\set r random(0, 999999)
\\set n random(1, 5)
DELETE FROM engram.observations WHERE id IN ($pick LIMIT :n);
SELECT engram_test.settle('$space');
SELECT engram_test.check_gone('$space');
} ],
		forget => [ 2, qq{
\\set r random(0, 999999)
\\set n random(1, 5)
SELECT engram_test.forget_some('$space', :r, :n);
SELECT engram_test.settle('$space');
SELECT engram_test.check_gone('$space');
} ],
		retire => [ 1, qq{
\\set r random(0, 999999)
UPDATE engram.observations SET observed_at = timestamptz '2000-01-01 00:00+00' + :r * interval '1 ms'
WHERE id = ($pick LIMIT 1);
SELECT engram_test.settle('$space');
SELECT engram.forget_before('$space', timestamptz '2000-01-01 00:00+00' + interval '500 s');
SELECT engram_test.settle('$space');
SELECT engram_test.check_gone('$space');
} ],
		update => [ 3, qq{
\\set r random(0, 999999)
\\set c random(0, 100)
UPDATE engram.observations SET confidence = :c / 100.0, metadata = jsonb_build_object('tag', 't' || (:c % 5), 'c', :c)
WHERE id = ($pick LIMIT 1);
UPDATE engram.observations SET content = 'reworded' WHERE id = ($pick OFFSET 1 LIMIT 1);
UPDATE engram.observations SET confidence = :c / 100.0
WHERE id = (SELECT id FROM engram.observations WHERE space_id = engram._space_id('$space') AND content = 'base'
			ORDER BY id OFFSET :r % 200 LIMIT 1);
SELECT engram_test.settle('$space');
} ],
		rolled_back => [ 2, qq{
\\set seed random(1, 1000000000)
\\set r random(0, 999999)
BEGIN;
SELECT engram.observe('$space', engram_test.vec(:seed), 'rolled back', 0.7, '{"tag": "base"}');
DELETE FROM engram.observations WHERE id IN ($pick LIMIT 3);
SELECT engram_test.forget_some('$space', (:r + 500000) % 1000000, 2);
UPDATE engram.observations SET confidence = 0.01, metadata = '{"tag": "base"}' WHERE id = ($pick OFFSET 3 LIMIT 1);
SELECT engram.forget_before('$space', timestamptz '2000-01-01 00:00+00' + interval '1000 s');
ROLLBACK;
} ]);
	return map { ('-f', write_script($node, "-- $_ on $space\n" . $scripts{$_}[1]) . '@' . $scripts{$_}[0]) }
	  sort keys %scripts;
}

sub recall_scripts
{
	my ($space, $exact) = @_;
	my %scripts = (
		k10 => [ 4, "SELECT engram_test.check_recall('$space', engram_test.vec(:seed), 10, $exact, NULL, false);" ],
		k100 => [ 1, "SELECT engram_test.check_recall('$space', engram_test.vec(:seed), 100, $exact, NULL, false);" ],
		as_of => [ 2, "SELECT engram_test.check_recall('$space', engram_test.vec(:seed), 10, $exact, NULL, true);" ],
		base => [ 2,
			"SELECT engram_test.check_recall('$space', engram_test.vec(:seed), 10, $exact, '{\"tag\": \"base\"}', false);" ]
	);
	return map {
		('-f', write_script($node, "-- $_ on $space\n\\set seed random(1, 1000000000)\n$scripts{$_}[1]\n") . '@'
			  . $scripts{$_}[0])
	} sort keys %scripts;
}

sub pgbench_count
{
	my ($out, $what) = @_;
	return $out =~ /number of $what: (\d+)/ ? $1 : 0;
}

# One phase: the writers for 17 s, the recall clients for 15 s from a
# second after they start.
sub run_phase
{
	my ($space, $exact) = @_;
	my ($w_out, $w_err, $r_out, $r_err) = ('', '', '', '');
	my $writers = IPC::Run::start(
		[ $pgbench, '-n', '-c', 4, '-j', 2, '-T', 17, '--max-tries', 10, writer_scripts($space), @connection ],
		'>', \$w_out, '2>', \$w_err);
	sleep 1;
	my $recallers = IPC::Run::start([ $pgbench, '-n', '-c', 2, '-j', 2, '-T', 15, recall_scripts($space, $exact), @connection ],
		'>', \$r_out, '2>', \$r_err);
	ok($recallers->finish, "$space: the recall clients ran for 15 s without a failure") or diag($r_err);
	ok($writers->finish, "$space: the writers ran for 17 s without a failure") or diag($w_err);
	my ($written, $recalled) =
	  (pgbench_count($w_out, 'transactions actually processed'), pgbench_count($r_out, 'transactions actually processed'));
	cmp_ok($written, '>', 100, "$space: the writers committed or rolled back $written transactions");
	cmp_ok($recalled, '>', 50, "$space: the recall clients ran $recalled checked recalls");
	is(pgbench_count($w_out, 'failed transactions') + pgbench_count($r_out, 'failed transactions'), 0,
		"$space: no transaction failed");
	unlike($w_err . $r_err, qr/ERROR|aborted/, "$space: no client saw an error") or diag($w_err . $r_err);
	note("$space: $written writing transactions ("
		  . pgbench_count($w_out, 'transactions retried')
		  . " retried after a deadlock or serialization failure), $recalled checked recalls");
	return;
}

# Whether the table holds exactly the rows born and not deleted, each
# stamped, per space.
sub check_bookkeeping
{
	my ($space) = @_;
	my ($rows, $born, $deleted, $unstamped, $stale) = split /\|/, $node->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM engram.observations WHERE space_id = engram._space_id('$space')),
			   (SELECT count(*) FROM engram_test.born WHERE space_id = engram._space_id('$space')),
			   (SELECT count(*) FROM engram_test.deleted WHERE space_id = engram._space_id('$space')),
			   (SELECT count(*) FROM engram_test.born WHERE gen IS NULL)
			   + (SELECT count(*) FROM engram_test.deleted WHERE gen IS NULL),
			   (SELECT count(*) FROM engram_test.deleted d JOIN engram.observations o USING (id))});
	is($rows, $born - $deleted, "$space: the table holds the $born rows born less the $deleted deleted");
	is($unstamped, 0, "$space: every recorded birth and deletion was stamped with a generation");
	is($stale, 0, "$space: no deleted row is left in the table");
	cmp_ok($deleted, '>', 100, "$space: the writers deleted $deleted rows");
	return;
}

# --- phase 1: linking runs --------------------------------------------------------
create_space('churn');
run_phase('churn', 'false');
check_bookkeeping('churn');
note('churn: ' . $node->safe_psql('postgres', 'SELECT count(*) FROM engram_test.refused')
	  . ' recalls as_of g0 were refused because a compaction had erased rows that snapshot saw');
my $compactions = () = slurp_file($node->logfile, $start) =~ /engram compacted space "churn"/g;
cmp_ok($compactions, '>', 0, "churn: the space was compacted $compactions times during the phase");

# --- phase 2: linking paused, answers from the exact scan of the tail --------
$node->append_conf('postgresql.conf', "engram.pause_linking = on\n");
$node->reload;
sleep 2;
create_space('tail');
sleep 2;
is($node->safe_psql('postgres', "SELECT linked FROM engram.spaces WHERE name = 'tail'"), 0,
	'tail: with linking paused nothing of the new space is linked');
run_phase('tail', 'true');
is($node->safe_psql('postgres', "SELECT linked FROM engram.spaces WHERE name = 'tail'"), 0,
	'tail: nothing was linked during the phase, so every recall came from the exact scan');
check_bookkeeping('tail');
note('tail: compacted '
	  . (() = slurp_file($node->logfile, $start) =~ /engram compacted space "tail"/g)
	  . ' times during the phase');

# --- the end: linking resumes; the stores hold exactly the live rows ---------
$node->append_conf('postgresql.conf', "engram.pause_linking = off\n");
$node->reload;
for my $space ('churn', 'tail')
{
	ok($node->safe_psql('postgres', "SELECT engram.wait_linked('$space', NULL, 120000)") eq 't',
		"$space: every live row is linked once linking resumes");
}
check_stored_sets($node, 'after the run');
my @crashes = server_crashes($node, $start);
is(scalar @crashes, 0, 'no server process crashed') or diag(join("\n", @crashes));
my @exits = engram_worker_exits($node, $start);
is(scalar @exits, 0, 'no engram worker exited') or diag(join("\n", @exits));
$node->log_check('no assertion failure', 0, log_unlike => [qr/PANIC|TRAP:|terminated by signal/]);

done_testing();