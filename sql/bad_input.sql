-- Every bad input gets a clear error and writes nothing.
\set SHOW_CONTEXT never
SELECT count(*) AS rows_before FROM engram.observations \gset
SELECT try($$SELECT engram.observe('alpha', '{1,2}')$$);
SELECT try($$SELECT engram.observe('alpha', '{1,2,3,4}')$$);
SELECT try($$SELECT engram.observe('alpha', '{1,NaN,3}')$$);
SELECT try($$SELECT engram.observe('alpha', '{1,2,Infinity}')$$);
SELECT try($$SELECT engram.observe('alpha', '{-Infinity,2,3}')$$);
SELECT try($$SELECT engram.observe('alpha', NULL)$$);
SELECT try($$SELECT engram.observe('alpha', '{}')$$);
SELECT try($$SELECT engram.observe('alpha', '{{1,2,3}}')$$);
SELECT try($$SELECT engram.observe('alpha', '{1,NULL,3}')$$);
SELECT try($$SELECT engram.observe('nope', '{1,2,3}')$$);
SELECT try($$SELECT engram.observe(NULL, '{1,2,3}')$$);
SELECT try($$SELECT engram.observe('alpha', '{1,2,3}', confidence => 1.5)$$);
SELECT try($$SELECT engram.observe('alpha', '{1,2,3}', confidence => -0.1)$$);
-- batches
SELECT try($$SELECT engram.observe_batch('alpha', '{1,2,3}')$$);
SELECT try($$SELECT engram.observe_batch('alpha', NULL)$$);
SELECT try($$SELECT engram.observe_batch('alpha', '{{{1,2,3}}}')$$);
SELECT try($$SELECT engram.observe_batch('alpha', '{{1,2},{3,4}}')$$);
SELECT try($$SELECT engram.observe_batch('alpha', '{{1,2,3},{4,NaN,6}}')$$);
SELECT try($$SELECT engram.observe_batch('alpha', '{{1,2,3},{4,NULL,6}}')$$);
SELECT try($$SELECT engram.observe_batch('alpha', '{{1,2,3},{4,5,6}}', '{only_one}')$$);
SELECT try($$SELECT engram.observe_batch('alpha', '{{1,2,3},{4,5,6}}', NULL, '{0.5,0.5,0.5}')$$);
SELECT try($$SELECT engram.observe_batch('alpha', '{{1,2,3},{4,5,6}}', '{{a},{b}}')$$);
SELECT try($$SELECT engram.observe_batch('nope', '{{1,2,3}}')$$);
-- plain INSERT and COPY take the same checks
SELECT try($$INSERT INTO engram.observations (space_id, embedding) VALUES (999999, '{1,2,3}')$$);
SELECT try(format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, '{1,2}')$$,
				  (SELECT space_id FROM engram.space_catalog WHERE name = 'alpha')));
SELECT try(format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, NULL)$$,
				  (SELECT space_id FROM engram.space_catalog WHERE name = 'alpha')));
SELECT try($$INSERT INTO engram.observations (space_id, embedding) VALUES (NULL, '{1,2,3}')$$);
\set SHOW_CONTEXT errors
COPY engram.observations (space_id, embedding) FROM stdin;
1	{1,2,3}
1	{1,2}
\.
COPY engram.observations (space_id, embedding) FROM stdin;
1	{1,2,3}
1	{1,NaN,3}
\.
\set SHOW_CONTEXT never
SELECT engram.wait_stored();
SELECT count(*) - :rows_before AS rows_written FROM engram.observations;
SELECT (SELECT count(*) FROM engram.observations o JOIN engram.space_catalog c USING (space_id) WHERE c.name = 'alpha')
	 = (SELECT observations FROM engram.spaces WHERE name = 'alpha') AS stored_equals_committed;
