-- Streaming sessions: exactly-once delivery for clients that retry.
\set SHOW_CONTEXT never
SELECT engram.open_session('alpha') AS s \gset
SELECT engram.observe('alpha', '{1,2,3}', session => :'s', seq => 1) AS id1 \gset
SELECT engram.observe('alpha', '{1,2,3}', session => :'s', seq => 1) = :id1 AS retry_acknowledged_with_same_id;
SELECT engram.observe('alpha', '{1,2,3}', session => :'s', seq => 2) > :id1 AS next_accepted;
SELECT replace(try(format($$SELECT engram.observe('alpha', '{1,2,3}', session => %L, seq => 5)$$, :'s')), :'s', '<session>') AS gap;
SELECT last_seq FROM engram.sessions WHERE session_id = :'s';
-- a batch overlapping what was accepted stores only the new part
SELECT engram.observe_batch('alpha', '{{1,1,1},{2,2,2},{3,3,3}}', session => :'s', seq => 2);
SELECT replace(try(format($$SELECT engram.observe_batch('alpha', '{{1,1,1}}', session => %L, seq => 9)$$, :'s')), :'s', '<session>') AS gap;
SELECT last_seq FROM engram.sessions WHERE session_id = :'s';
-- the position moves with the transaction
BEGIN;
SELECT engram.observe('alpha', '{5,5,5}', session => :'s', seq => 5) > 0 AS accepted;
ROLLBACK;
SELECT last_seq FROM engram.sessions WHERE session_id = :'s';
SELECT seq, embedding FROM engram.observations WHERE session_id = :'s' ORDER BY seq;
SELECT engram.wait_stored();
SELECT count(*) AS stored_session_rows FROM engram.stored_ids('alpha') s(id)
JOIN engram.observations o USING (id) WHERE o.session_id = :'s';
-- misuse
SELECT replace(try(format($$SELECT engram.observe('alpha', '{1,2,3}', session => %L, seq => 0)$$, :'s')), :'s', '<session>');
SELECT replace(try(format($$SELECT engram.observe('alpha', '{1,2,3}', session => %L)$$, :'s')), :'s', '<session>');
SELECT try($$SELECT engram.observe('alpha', '{1,2,3}', seq => 1)$$);
SELECT try($$SELECT engram.observe('alpha', '{1,2,3}', session => '00000000-0000-0000-0000-000000000000', seq => 1)$$);
SELECT replace(try(format($$SELECT engram.observe('beta_space-1', '{1,2,3,4}', session => %L, seq => 5)$$, :'s')), :'s', '<session>');
SELECT try($$SELECT engram.open_session('nope')$$);
SELECT engram.close_session(:'s');
SELECT replace(try(format('SELECT engram.close_session(%L)', :'s')), :'s', '<session>');
