-- Forgetting, updates, filters and scoring: DELETE, forget() and
-- forget_before() hide rows from their commit's generation on and keep them
-- for older snapshots; UPDATE of confidence, metadata and observed_at
-- replaces a row's version, of content changes nothing recall returns, of
-- embedding, space_id or id is refused; rows the same transaction wrote and
-- removed never appear; recall filters on metadata containment and time and
-- ranks by the combined score when asked.
\set SHOW_CONTEXT never
SELECT engram.create_space('forget_l2', 2, 'l2', 8, 32) AS forget_space \gset
INSERT INTO engram.observations (space_id, embedding, content, confidence, metadata, observed_at) VALUES
	(:forget_space, '{0,0}', 'a', 0.9, '{"user": "u1", "tags": ["work", "urgent"], "n": 1}', '2026-01-01'),
	(:forget_space, '{1,0}', 'b', 0.5, '{"user": "u2", "tags": ["home"], "n": 2.0}', '2026-02-01'),
	(:forget_space, '{2,0}', 'c', 0.2, '{"user": "u1", "tags": ["home", "work"]}', '2026-03-01'),
	(:forget_space, '{3,0}', 'd', 0.7, NULL, '2026-04-01'),
	(:forget_space, '{4,0}', 'e', 0.6, '[1, 2]', '2026-05-01');
CREATE TEMP VIEW recalled AS
	SELECT o.content, r.* FROM engram.recall('forget_l2', '{0,0}', 10) r JOIN engram.observations o USING (id);
SELECT string_agg(content, ',' ORDER BY distance) AS everything FROM recalled;
SELECT engram.current_generation('forget_l2') AS before_delete \gset

-- DELETE: gone from the latest snapshot, still there as_of before it.
DELETE FROM engram.observations WHERE space_id = :forget_space AND content = 'b';
SELECT string_agg(content, ',' ORDER BY distance) AS after_delete FROM recalled;
-- (Row i lies at distance i from the cue: b, deleted from the table, is the 1.)
SELECT string_agg(r.distance::text, ',' ORDER BY r.distance) AS as_of_before_delete
FROM engram.recall('forget_l2', '{0,0}', 10, as_of => :before_delete) r;

-- A rolled-back delete hides nothing; forget() counts what it deleted.
BEGIN;
SELECT engram.forget('forget_l2', ARRAY(SELECT id FROM engram.observations WHERE content IN ('a', 'c')));
ROLLBACK;
SELECT string_agg(content, ',' ORDER BY distance) AS after_rollback FROM recalled;
SELECT engram.forget('forget_l2', ARRAY(SELECT id FROM engram.observations WHERE content = 'e')) AS forgotten;
SELECT engram.forget('forget_l2', '{}') AS nothing_to_forget;
SELECT string_agg(content, ',' ORDER BY distance) AS after_forget FROM recalled;

-- A savepoint that deleted and was rolled back leaves the row in.
BEGIN;
SAVEPOINT s;
DELETE FROM engram.observations WHERE space_id = :forget_space AND content = 'd';
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT string_agg(content, ',' ORDER BY distance) AS after_savepoint FROM recalled;

-- Rows written and removed by one transaction never appear, and an insert
-- updated in its own transaction appears once, as last written.
BEGIN;
INSERT INTO engram.observations (space_id, embedding, content) VALUES (:forget_space, '{0.5,0}', 'gone');
DELETE FROM engram.observations WHERE space_id = :forget_space AND content = 'gone';
INSERT INTO engram.observations (space_id, embedding, content, confidence) VALUES (:forget_space, '{0.25,0}', 'twice', 0.1);
UPDATE engram.observations SET confidence = 0.3 WHERE space_id = :forget_space AND content = 'twice';
UPDATE engram.observations SET confidence = 0.4 WHERE space_id = :forget_space AND content = 'twice';
COMMIT;
SELECT content, confidence FROM recalled ORDER BY distance;
SELECT (SELECT count(*) FROM engram.stored_ids('forget_l2')) AS stored,
	   (SELECT count(*) FROM engram.observations WHERE space_id = :forget_space) AS in_table,
	   (SELECT observations FROM engram.spaces WHERE name = 'forget_l2') AS observations;

-- UPDATE of confidence replaces the version at its commit's generation;
-- older snapshots keep the old one. Content alone changes nothing recall returns.
SELECT engram.current_generation('forget_l2') AS before_update \gset
UPDATE engram.observations SET confidence = 0.95 WHERE space_id = :forget_space AND content = 'c';
SELECT content, confidence, generation > :before_update AS new_version FROM recalled WHERE content = 'c';
SELECT r.confidence AS old_confidence
FROM engram.recall('forget_l2', '{2,0}', 1, as_of => :before_update) r;
SELECT generation AS c_generation FROM recalled WHERE content = 'c' \gset
UPDATE engram.observations SET content = 'c, reworded' WHERE space_id = :forget_space AND content = 'c';
SELECT content, generation = :c_generation AS same_version FROM recalled WHERE content LIKE 'c%';
UPDATE engram.observations SET content = 'c' WHERE space_id = :forget_space AND content = 'c, reworded';
SELECT count(*) FILTER (WHERE r.confidence >= 0.9) AS confident
FROM engram.recall('forget_l2', '{0,0}', 10, min_confidence => 0.9) r;

-- Refused updates, and TRUNCATE.
SELECT try($$UPDATE engram.observations SET embedding = '{9,9}' WHERE content = 'a' AND space_id = $$ || :forget_space);
SELECT regexp_replace(try($$UPDATE engram.observations SET id = id + 1000 WHERE content = 'a' AND space_id = $$ || :forget_space),
					  'Observation [0-9]+', 'Observation N') AS id_update;
SELECT engram.create_space('forget_other', 2, 'l2') > 0 AS other_space;
SELECT try($$UPDATE engram.observations SET space_id = engram._space_id('forget_other') WHERE content = 'a' AND space_id = $$ || :forget_space);
SELECT engram.drop_space('forget_other');
SELECT try($$TRUNCATE engram.observations$$);

-- forget_before: retention by observed_at.
SELECT engram.forget_before('forget_l2', '2026-01-15') AS retired;
SELECT string_agg(content, ',' ORDER BY distance) AS after_retention FROM recalled;
INSERT INTO engram.observations (space_id, embedding, content, confidence, metadata, observed_at) VALUES
	(:forget_space, '{0,0}', 'a', 0.9, '{"user": "u1", "tags": ["work", "urgent"], "n": 1}', '2026-01-01'),
	(:forget_space, '{1,0}', 'b', 0.5, '{"user": "u2", "tags": ["home"], "n": 2.0}', '2026-02-01'),
	(:forget_space, '{4,0}', 'e', 0.6, '[1, 2]', '2026-05-01');

-- Filters: metadata @> filter on top-level keys, scalars and arrays.
CREATE FUNCTION filtered(f jsonb) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(o.content, ',' ORDER BY r.distance), '')
	FROM engram.recall('forget_l2', '{0,0}', 10, filter => f) r JOIN engram.observations o USING (id) $$;
SELECT f AS filter, filtered(f::jsonb) AS recalled,
	   (SELECT coalesce(string_agg(content, ',' ORDER BY embedding[1]), '') FROM engram.observations
		WHERE space_id = :forget_space AND metadata @> f::jsonb) AS by_containment
FROM (VALUES ('{}'), ('{"user": "u1"}'), ('{"user": "u3"}'), ('{"tags": ["work"]}'), ('{"tags": ["home", "work"]}'),
			 ('{"tags": []}'), ('{"tags": "work"}'), ('{"n": 1.0}'), ('{"n": 2}'), ('{"user": "u1", "n": 1}'),
			 ('{"user": ["u1"]}')) v(f);
SELECT try($$SELECT * FROM engram.recall('forget_l2', '{0,0}', filter => '{"a": {"b": 1}}')$$);
SELECT try($$SELECT * FROM engram.recall('forget_l2', '{0,0}', filter => '{"a": [[1]]}')$$);
SELECT try($$SELECT * FROM engram.recall('forget_l2', '{0,0}', filter => '[1]')$$);
SELECT try($$SELECT * FROM engram.recall('forget_l2', '{0,0}', filter => '"x"')$$);

-- Time windows: observed_after inclusive, observed_before exclusive.
SELECT string_agg(o.content, ',' ORDER BY r.distance) AS in_window
FROM engram.recall('forget_l2', '{0,0}', 10, observed_after => '2026-02-01', observed_before => '2026-04-01') r
JOIN engram.observations o USING (id);
SELECT r.observed_at = o.observed_at AS observed_at_returned
FROM engram.recall('forget_l2', '{0,0}', 1) r JOIN engram.observations o USING (id);

-- Scoring: with neither argument results are ordered by distance; a
-- confidence weight and a half-life reorder by the combined score
-- s * (1 - w + w * confidence) * 2^(-age / half_life), s = 1 / (1 + distance).
SELECT engram.create_space('score_l2', 2, 'l2', 8, 32) AS score_space \gset
INSERT INTO engram.observations (space_id, embedding, content, confidence, observed_at) VALUES
	(:score_space, '{0,0}', 'p', 0.9, now() - interval '30 days'),
	(:score_space, '{1,0}', 'q', 0.2, now()),
	(:score_space, '{2,0}', 'r', 1.0, now() - interval '1 day');
CREATE FUNCTION scored(half_life interval, weight real) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(o.content || '=' || round(r.score::numeric, 3), ',' ORDER BY ord)
	FROM (SELECT *, row_number() OVER () AS ord
		  FROM engram.recall('score_l2', '{0,0}', 10, recency_half_life => half_life, confidence_weight => weight)) r
	JOIN engram.observations o USING (id) $$;
SELECT scored(NULL, 0) AS by_distance, scored(NULL, 1) AS by_confidence, scored('1 day', 0) AS by_recency,
	   scored('1 day', 1) AS by_both;
SELECT engram.drop_space('score_l2');
SELECT try($$SELECT * FROM engram.recall('forget_l2', '{0,0}', recency_half_life => '0 days')$$);
SELECT try($$SELECT * FROM engram.recall('forget_l2', '{0,0}', recency_half_life => '-1 day')$$);
SELECT try($$SELECT * FROM engram.recall('forget_l2', '{0,0}', confidence_weight => 1.5)$$);

-- Bad arguments of forget and forget_before.
SELECT try($$SELECT engram.forget('forget_l2', NULL)$$);
SELECT try($$SELECT engram.forget('nope', '{1}')$$);
SELECT try($$SELECT engram.forget_before('forget_l2', NULL)$$);

-- Privileges: forgetting needs DELETE on the table.
CREATE ROLE forget_reader;
GRANT USAGE ON SCHEMA engram, public TO forget_reader;
GRANT SELECT ON engram.observations TO forget_reader;
SELECT try_as('forget_reader', $$SELECT engram.forget('forget_l2', '{1}')$$);
SELECT try_as('forget_reader', $$SELECT engram.forget_before('forget_l2', now())$$);
SELECT try_as('forget_reader', $$SELECT count(*) FROM engram.revisions$$);
-- The forgets of large deletes are engram's alone to read and write.
SELECT try_as('forget_reader', $$SELECT count(*) FROM engram._forget_spill$$);
SELECT try_as('forget_reader', $$INSERT INTO engram._forget_spill VALUES (1, 1, 1, '{1,1}')$$);
SELECT c.relpersistence, c.relacl FROM pg_class c WHERE c.oid = 'engram._forget_spill'::regclass;
DROP OWNED BY forget_reader;
DROP ROLE forget_reader;

-- audit_erasure: a vector the index holds is found in shared memory, one it
-- never held is not; superusers only.
SELECT engram.observe('forget_l2', '{1234.5,-6789.25}') > 0 AS observed;
SELECT place, occurrences > 0 AS present
FROM engram.audit_erasure('{1234.5,-6789.25}') WHERE place = 'shared memory';
SELECT place, occurrences FROM engram.audit_erasure('{4321.5,-9876.25}') WHERE place = 'shared memory';
-- Once the row is deleted, the worker compacts the space within
-- engram.erase_within (1 h in the test configuration, so that the snapshots
-- above stay answerable; 1 s from here on): the vector leaves shared memory,
-- and snapshots that saw it are refused.
ALTER SYSTEM SET engram.erase_within = '1s';
SELECT pg_reload_conf();
CREATE FUNCTION wait_erased(space text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..600 LOOP
		IF (SELECT s.forgotten FROM engram.spaces s WHERE s.name = space) = 0 THEN
			RETURN true;
		END IF;
		PERFORM pg_sleep(0.05);
	END LOOP;
	RETURN false;
END $$;
SELECT engram.current_generation('forget_l2') AS before_erasure \gset
DELETE FROM engram.observations WHERE space_id = :forget_space AND embedding = '{1234.5,-6789.25}';
SELECT engram.wait_stored() AS delete_stored;
SELECT wait_erased('forget_l2') AS erased;
SELECT place, occurrences FROM engram.audit_erasure('{1234.5,-6789.25}') WHERE place = 'shared memory';
SELECT regexp_replace(try($$SELECT * FROM engram.recall('forget_l2', '{0,0}', 10, as_of => $$ || :before_erasure || ')'),
					  '(generation|as_of =>) [0-9]+', '\1 N', 'g') AS erased_snapshot;
SELECT string_agg(content, ',' ORDER BY distance) AS after_erasure FROM recalled;
ALTER SYSTEM RESET engram.erase_within;
SELECT pg_reload_conf();
SELECT try($$SELECT * FROM engram.audit_erasure('{1}')$$);
SELECT try($$SELECT * FROM engram.audit_erasure(NULL)$$);
SELECT try($$SELECT * FROM engram.audit_erasure('{1,NaN}')$$);
CREATE ROLE forget_auditor;
GRANT USAGE ON SCHEMA engram, public TO forget_auditor;
SELECT try_as('forget_auditor', $$SELECT * FROM engram.audit_erasure('{1,2,3}')$$);
DROP OWNED BY forget_auditor;
DROP ROLE forget_auditor;

SELECT engram.drop_space('forget_l2');
SELECT count(*) AS revisions_of_dropped FROM engram.revisions WHERE space_id = :forget_space;
