-- Ingest: observe, observe_batch, INSERT and COPY all reach the store; rolled
-- back transactions and savepoints do not; a bulk transaction takes the
-- id-range path; the table of truth is append-only and stores vectors inline.
\set SHOW_CONTEXT never
SELECT space_id AS alpha FROM engram.space_catalog WHERE name = 'alpha' \gset
SELECT engram.observe('alpha', '{1,2,3}') > 0 AS observed;
SELECT engram.observe('alpha', '{1,2,3}', 'hello', 0.9, '{"k": 1}') > 0 AS observed;
SELECT engram.observe_batch('alpha', '{{1,0,0},{0,1,0},{0,0,1}}', '{a,b,c}', '{0.1,0.2,0.3}');
SELECT engram.observe_batch('alpha', '{{1,1,1},{2,2,2}}');
SELECT engram.observe_batch('alpha', '{{1,1,1},{2,2,2}}', '{x,NULL}', '{NULL,0.4}');
INSERT INTO engram.observations (space_id, embedding, content) VALUES (:alpha, '{5,5,5}', 'insert');
COPY engram.observations (space_id, embedding, content) FROM stdin;
1	{6,6,6}	copy
1	{7,7,7}	copy
\.
BEGIN;
SELECT engram.observe('alpha', '{9,9,9}', 'rolled back') > 0 AS observed;
ROLLBACK;
BEGIN;
SELECT engram.observe('alpha', '{8,8,8}', 'kept') > 0 AS observed;
SAVEPOINT s1;
SELECT engram.observe('alpha', '{9,9,9}', 'savepoint rolled back') > 0 AS observed;
SAVEPOINT s1_inner;
SELECT engram.observe_batch('alpha', '{{9,9,9}}', '{"nested rolled back"}');
ROLLBACK TO s1;
SAVEPOINT s2;
SELECT engram.observe('alpha', '{4,4,4}', 'savepoint released') > 0 AS observed;
RELEASE s2;
COMMIT;
SELECT engram.wait_stored();

-- the store holds exactly the committed rows, each once
SELECT (SELECT count(*) FROM engram.observations WHERE space_id = :alpha) AS committed,
	   (SELECT observations FROM engram.spaces WHERE name = 'alpha') AS stored;
SELECT count(*) AS mismatches
FROM (SELECT id FROM engram.observations WHERE space_id = :alpha) t
FULL JOIN engram.stored_ids('alpha') s(id) USING (id)
WHERE t.id IS NULL OR s.id IS NULL;
SELECT count(*) - count(DISTINCT s) AS duplicates FROM engram.stored_ids('alpha') s;
SELECT embedding, content, confidence, metadata FROM engram.observations WHERE space_id = :alpha ORDER BY id;

-- a transaction bigger than an eighth of the ring publishes id ranges
SELECT engram.create_space('wide', 512, 'l2') AS wide \gset
INSERT INTO engram.observations (space_id, embedding)
SELECT :wide, array_fill(g::real, ARRAY[512]) FROM generate_series(1, 400) g;
BEGIN;
INSERT INTO engram.observations (space_id, embedding)
SELECT :wide, array_fill(g::real, ARRAY[512]) FROM generate_series(1, 300) g;
SAVEPOINT half;
INSERT INTO engram.observations (space_id, embedding)
SELECT :wide, array_fill(g::real, ARRAY[512]) FROM generate_series(1, 300) g;
ROLLBACK TO half;
COMMIT;
SELECT engram.wait_stored();
SELECT (SELECT count(*) FROM engram.observations WHERE space_id = :wide) AS committed,
	   (SELECT observations FROM engram.spaces WHERE name = 'wide') AS stored;

-- TRUNCATE fires no row trigger and stays refused (forget.sql tests
-- deletes and updates).
SELECT try($$TRUNCATE engram.observations$$);

-- vectors stay uncompressed, and inline while the row fits a page (EXTERNAL)
SELECT attstorage FROM pg_attribute WHERE attrelid = 'engram.observations'::regclass AND attname = 'embedding';
SELECT reloptions FROM pg_class WHERE oid = 'engram.observations'::regclass;
SELECT pg_column_size(embedding) AS bytes_for_512_floats FROM engram.observations WHERE space_id = :wide LIMIT 1;
