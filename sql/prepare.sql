-- PREPARE TRANSACTION: a transaction that observed is refused at PREPARE and
-- leaves nothing behind (no row, no ring record, no pending work), the
-- session goes on observing; a transaction without observations prepares and
-- commits or rolls back as usual, and nothing of it outlives the PREPARE.
\set SHOW_CONTEXT never
SELECT engram.create_space('prepared', 3, 'l2') > 0 AS created;

BEGIN;
SELECT engram.observe('prepared', '{1,2,3}') > 0 AS observed;
PREPARE TRANSACTION 'observed';
SELECT count(*) AS prepared_transactions FROM pg_prepared_xacts;
SELECT count(*) AS rows_of_the_refused_transaction
FROM engram.observations o JOIN engram.space_catalog c USING (space_id) WHERE c.name = 'prepared';

-- The session goes on observing, and everything it commits is stored and linked.
SELECT engram.observe('prepared', '{1,2,3}') > 0 AS observed;
SELECT engram.observe_batch('prepared', '{{4,5,6},{7,8,9}}') AS observed;
SELECT engram.wait_stored() AND engram.wait_linked('prepared') AS caught_up;
SELECT observations, linked FROM engram.spaces WHERE name = 'prepared';
SELECT level, pending FROM engram.pressure('prepared');

-- Rows rolled back to a savepoint leave nothing to publish: PREPARE works.
BEGIN;
SAVEPOINT before_observing;
SELECT engram.observe('prepared', '{1,1,1}') > 0 AS observed;
ROLLBACK TO SAVEPOINT before_observing;
PREPARE TRANSACTION 'rolled_back';
COMMIT PREPARED 'rolled_back';

-- Without observations, PREPARE and COMMIT PREPARED work as usual.
BEGIN;
SELECT count(*) AS spaces FROM engram.spaces WHERE name = 'prepared';
PREPARE TRANSACTION 'plain';
SELECT gid FROM pg_prepared_xacts;
COMMIT PREPARED 'plain';

-- A prepared drop_space rolls back cleanly: the space keeps its rows and the
-- workers keep its index. A transaction that forgot rows cannot be prepared
-- either: its forgets are published from this session at commit.
BEGIN;
SELECT engram.drop_space('prepared');
PREPARE TRANSACTION 'dropped';
ROLLBACK PREPARED 'dropped';
BEGIN;
SELECT engram.forget('prepared', ARRAY(SELECT id FROM engram.observations WHERE space_id = engram._space_id('prepared')));
PREPARE TRANSACTION 'forgot';
SELECT count(*) AS prepared_transactions FROM pg_prepared_xacts;
SELECT observations FROM engram.spaces WHERE name = 'prepared';
SELECT count(*) AS recalled FROM engram.recall('prepared', '{1,2,3}', k => 10);
SELECT engram.drop_space('prepared');
SELECT count(*) AS prepared_transactions FROM pg_prepared_xacts;
