-- Spaces: creation with defaults and parameters, the spaces view, every
-- invalid argument, duplicates, dropping (committed and rolled back).
\set SHOW_CONTEXT never
-- Runs a statement and shows its error as SQLSTATE: message | detail | hint.
CREATE FUNCTION try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	-- PostgreSQL's "Failing row contains ..." details carry ids and timestamps.
	IF det LIKE 'Failing row contains%' THEN
		det := NULL;
	END IF;
	RETURN st || ': ' || msg || coalesce(' | ' || nullif(det, ''), '') || coalesce(' | ' || nullif(hnt, ''), '');
END
$$;

SELECT engram.create_space('alpha', 3, 'l2');
SELECT engram.create_space('beta_space-1', 4);
SELECT engram.create_space('gamma', dim => 2, metric => 'ip', m => 8, ef_construction => 8, storage => 'sq8');
SELECT space_id, name, dim, metric, m, ef_construction, storage, observations, linked, pending,
	   memory_bytes >= 0 AS has_memory, owner = current_user::regrole AS owned_by_me
FROM engram.spaces ORDER BY space_id;

-- names: 3-64 characters of [a-z0-9_-]
SELECT try($$SELECT engram.create_space('ab', 3)$$);
SELECT try($$SELECT engram.create_space('Alpha', 3)$$);
SELECT try($$SELECT engram.create_space('has space', 3)$$);
SELECT try($$SELECT engram.create_space('semi;colon', 3)$$);
SELECT try($$SELECT engram.create_space('quote"d', 3)$$);
SELECT try(format('SELECT engram.create_space(%L, 3)', repeat('a', 65)));
SELECT length(repeat('a', 64)) AS longest, try(format('SELECT engram.create_space(%L, 3)', repeat('a', 64)));
SELECT try($$SELECT engram.create_space(NULL, 3)$$);
SELECT try($$SELECT engram.create_space('alpha', 3)$$);
-- parameters out of range
SELECT try($$SELECT engram.create_space('delta', 0)$$);
SELECT try($$SELECT engram.create_space('delta', 2001)$$);
SELECT try($$SELECT engram.create_space('delta', 4097, storage => 'f16')$$);
SELECT try($$SELECT engram.create_space('delta', 4097, storage => 'sq8')$$);
SELECT try($$SELECT engram.create_space('delta', 3, storage => 'f64')$$);
SELECT try($$SELECT engram.create_space('delta', 3, storage => 'F16')$$);
SELECT try($$SELECT engram.create_space('delta', 3, storage => NULL)$$);
SELECT try($$SELECT engram.create_space('delta', NULL)$$);
SELECT try($$SELECT engram.create_space('delta', 3, 'hamming')$$);
SELECT try($$SELECT engram.create_space('delta', 3, 'l2', 1)$$);
SELECT try($$SELECT engram.create_space('delta', 3, 'l2', 101)$$);
SELECT try($$SELECT engram.create_space('delta', 3, 'l2', 16, 8)$$);
SELECT try($$SELECT engram.create_space('delta', 3, 'l2', 16, 1001)$$);
SELECT count(*) AS no_partial_spaces FROM engram.space_catalog WHERE name = 'delta';

-- dropping frees the space, its rows and its memory
SELECT engram.create_space('doomed', 2, 'ip') AS doomed_id \gset
SELECT engram.observe('doomed', '{1,2}') > 0 AS observed;
SELECT engram.wait_stored();
SELECT observations FROM engram.spaces WHERE name = 'doomed';
SELECT engram.drop_space('doomed');
SELECT engram.wait_stored();
SELECT count(*) AS views_rows FROM engram.spaces WHERE name = 'doomed';
SELECT count(*) AS table_rows FROM engram.observations WHERE space_id = :doomed_id;
SELECT count(*) AS store_slots FROM engram._space_state() WHERE space_id = :doomed_id;
SELECT try($$SELECT engram.drop_space('doomed')$$);
SELECT try($$SELECT engram.drop_space(NULL)$$);

-- a rolled back drop keeps everything
SELECT engram.observe('gamma', '{3,4}') > 0 AS observed;
BEGIN;
SELECT engram.drop_space('gamma');
ROLLBACK;
SELECT engram.wait_stored();
SELECT name, observations FROM engram.spaces WHERE name = 'gamma';

SELECT engram.current_generation('alpha') > 0 AS has_generation;
-- once loaded, every space is ready (quarantines and a full directory are
-- covered by test/t/009_memory_limit.pl and test/t/015_fault_containment.pl)
SELECT name, state, state_detail FROM engram.spaces ORDER BY space_id;
SELECT try($$SELECT engram.current_generation('nope')$$);
