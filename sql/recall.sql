-- Recall: results and their columns, the confidence filter, snapshots by
-- generation, read-your-writes, wait_linked, rebuild, privileges and every
-- bad argument.
\set SHOW_CONTEXT never
SELECT engram.create_space('recall_l2', 3, 'l2', 8, 32);
SELECT engram.create_space('recall_cos', 2, 'cosine', 8, 32);
-- A first batch, committed on its own, then a second one.
SELECT engram.observe_batch('recall_l2', '{{0,0,0},{1,0,0},{0,2,0}}', '{origin,x1,y2}', '{0.9,0.5,0.2}');
SELECT engram.current_generation('recall_l2') AS first_generation \gset
SELECT engram.observe_batch('recall_l2', '{{0,0,3},{10,10,10}}', '{z3,far}', '{0.8,0.99}');
-- Read-your-writes: the batch just committed is found at once.
SELECT o.content, round(r.distance::numeric, 4) AS distance, round(r.score::numeric, 4) AS score, r.confidence,
	   r.generation > :first_generation AS newer
FROM engram.recall('recall_l2', '{0,0,0}', 10) r JOIN engram.observations o ON o.id = r.id
ORDER BY r.distance, o.content;
-- k bounds the result; min_confidence filters before choosing the k nearest.
SELECT o.content FROM engram.recall('recall_l2', '{0.9,0,0}', 2) r JOIN engram.observations o USING (id)
ORDER BY r.distance;
SELECT o.content FROM engram.recall('recall_l2', '{0,0,0}', 2, min_confidence => 0.85) r
JOIN engram.observations o USING (id) ORDER BY r.distance;
-- as_of an older generation never returns newer rows.
SELECT o.content FROM engram.recall('recall_l2', '{0,0,0}', 10, as_of => :first_generation) r
JOIN engram.observations o USING (id) ORDER BY r.distance;
-- A snapshot from before the indexes were loaded from the table (at the
-- server's start) cannot be told apart, and says so.
SELECT regexp_replace(try($$SELECT * FROM engram.recall('recall_l2', '{0,0,0}', 10, as_of => 0)$$),
					  '(generation|as_of =>) [0-9]+', '\1 N', 'g') AS before_the_load;
-- Cosine: distance 1 - cos, score clamped to [0, 1]; the cue need not be unit length.
SELECT engram.observe_batch('recall_cos', '{{1,0},{0,5},{-2,0}}', '{east,north,west}');
SELECT o.content, round(r.distance::numeric, 4) AS distance, round(r.score::numeric, 4) AS score
FROM engram.recall('recall_cos', '{3,0}', 3) r JOIN engram.observations o USING (id) ORDER BY r.distance;
-- A space without observations answers with nothing.
SELECT engram.create_space('recall_empty', 2, 'l2');
SELECT count(*) FROM engram.recall('recall_empty', '{1,1}');
-- wait_linked, and the spaces view once everything is linked.
SELECT engram.wait_linked('recall_l2'), engram.wait_linked('recall_cos'), engram.wait_linked('recall_empty');
SELECT name, observations, linked, pending, generation >= :first_generation AS has_generation,
	   memory_bytes > 0 AS has_memory
FROM engram.spaces WHERE name LIKE 'recall%' ORDER BY name;
-- Rebuild answers the same afterwards and keeps each row's generation.
CREATE TEMP TABLE before_rebuild AS SELECT * FROM engram.recall('recall_l2', '{0,0,0}', 10);
SELECT engram.rebuild('recall_l2');
SELECT count(*) AS changed_rows FROM (
	(SELECT * FROM engram.recall('recall_l2', '{0,0,0}', 10) EXCEPT SELECT * FROM before_rebuild)
	UNION ALL
	(SELECT * FROM before_rebuild EXCEPT SELECT * FROM engram.recall('recall_l2', '{0,0,0}', 10))) d;
SELECT engram.rebuild('recall_empty');
-- Bad arguments.
SELECT try($$SELECT * FROM engram.recall(NULL, '{1,2,3}')$$);
SELECT try($$SELECT * FROM engram.recall('nope', '{1,2,3}')$$);
SELECT try($$SELECT * FROM engram.recall('Robert''); DROP TABLE x; --', '{1,2,3}')$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', NULL)$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{}')$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{{1,2,3}}')$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{1,NULL,3}')$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{1,2}')$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{1,NaN,3}')$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{1,2,-Infinity}')$$);
SELECT try($$SELECT * FROM engram.recall('recall_cos', '{0,0}')$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{1,2,3}', 0)$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{1,2,3}', -5)$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{1,2,3}', 10001)$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{1,2,3}', NULL)$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{1,2,3}', 5, min_confidence => 1.5)$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{1,2,3}', 5, min_confidence => 'NaN')$$);
SELECT try($$SELECT * FROM engram.recall('recall_l2', '{1,2,3}', 5, as_of => -1)$$);
SELECT regexp_replace(try($$SELECT * FROM engram.recall('recall_l2', '{1,2,3}', 5, as_of => 9223372036854775807)$$),
					  'generation is [0-9]+', 'generation is N');
SELECT try($$SELECT engram.wait_linked('nope')$$);
SELECT try($$SELECT engram.wait_linked('recall_l2', timeout_ms => -1)$$);
SELECT try($$SELECT engram.observe('recall_cos', '{0,0}')$$);
-- Privileges: recall checks SELECT on engram.observations itself, and
-- refuses roles that row-level security would filter. try_as runs a
-- statement through try as another role.
CREATE FUNCTION try_as(role name, sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	try_fn text := (SELECT format('%I.%I', pronamespace::regnamespace, proname) FROM pg_proc WHERE proname = 'try');
	result text;
BEGIN
	PERFORM set_config('role', role, true);
	EXECUTE format('SELECT %s($1)', try_fn) INTO result USING sql;
	PERFORM set_config('role', 'none', true);
	RETURN result;
END
$$;
CREATE ROLE recall_reader;
GRANT USAGE ON SCHEMA engram, public TO recall_reader;
SELECT try_as('recall_reader', $$SELECT count(*) FROM engram.recall('recall_l2', '{0,0,0}', 1)$$);
SELECT try_as('recall_reader', $$SELECT engram.rebuild('recall_l2')::text$$);
GRANT SELECT ON engram.observations TO recall_reader;
SELECT try_as('recall_reader', $$SELECT count(*) FROM engram.recall('recall_l2', '{0,0,0}', 3)$$);
ALTER TABLE engram.observations ENABLE ROW LEVEL SECURITY;
SELECT try_as('recall_reader', $$SELECT count(*) FROM engram.recall('recall_l2', '{0,0,0}', 1)$$);
ALTER TABLE engram.observations DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON engram.observations FROM recall_reader;
REVOKE ALL ON SCHEMA engram, public FROM recall_reader;
DROP ROLE recall_reader;
SELECT engram.drop_space('recall_empty');
