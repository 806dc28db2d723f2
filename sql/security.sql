-- Security: the privilege boundary around engram's functions, triggers and
-- catalog, tried by roles that hold too little: one with only USAGE on schema
-- engram, a reader (SELECT on engram.observations), a writer that was granted
-- every privilege on engram.space_catalog, and members and non-members of a
-- space's owning role. Each attempt shows its SQLSTATE and message; at the end
-- the owner's space answers recall exactly as before.
\set SHOW_CONTEXT never
-- Runs statements as a role (NULL: as the current one) and shows their error
-- as SQLSTATE: message | detail | hint. Space ids and row ids depend on the
-- tests before this one, so they are masked.
CREATE FUNCTION sec_try(role name, sql text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	IF role IS NOT NULL THEN
		PERFORM set_config('role', role, true);
	END IF;
	BEGIN
		EXECUTE sql;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
								hnt = PG_EXCEPTION_HINT;
		IF role IS NOT NULL THEN
			PERFORM set_config('role', 'none', true);
		END IF;
		IF det LIKE 'Failing row contains%' OR det LIKE 'Key (%' THEN
			det := NULL;
		END IF;
		RETURN regexp_replace(st || ': ' || msg || coalesce(' | ' || nullif(det, ''), '')
							  || coalesce(' | ' || nullif(hnt, ''), ''), '(space|[Oo]bservation) [0-9]+', '\1 N', 'g');
	END;
	IF role IS NOT NULL THEN
		PERFORM set_config('role', 'none', true);
	END IF;
	RETURN 'ok';
END
$$;

CREATE ROLE sec_owner;   -- may create spaces; owns sec_space
CREATE ROLE sec_member;  -- a member of sec_owner
CREATE ROLE sec_usage;   -- USAGE on schema engram and nothing else
CREATE ROLE sec_reader;  -- may recall
CREATE ROLE sec_writer;  -- may observe, and was granted every privilege on engram.space_catalog
GRANT sec_owner TO sec_member;
GRANT USAGE ON SCHEMA engram TO sec_owner, sec_usage, sec_reader, sec_writer;
GRANT EXECUTE ON FUNCTION engram.create_space TO sec_owner;
GRANT INSERT ON engram.observations TO sec_owner, sec_writer;
GRANT USAGE ON SEQUENCE engram.observations_id_seq TO sec_owner, sec_writer;
GRANT SELECT ON engram.observations TO sec_owner, sec_reader;
GRANT INSERT, UPDATE, DELETE, TRUNCATE ON engram.space_catalog TO sec_writer;
GRANT TRUNCATE ON engram.observations, engram.sessions TO sec_writer;
GRANT USAGE ON SEQUENCE engram.space_catalog_space_id_seq TO sec_writer;

-- The owner's space, and what it answers before the attacks.
SET ROLE sec_owner;
SELECT engram.create_space('sec_space', 3, 'l2') AS sec_id \gset
SELECT count(engram.observe('sec_space', ARRAY[i, i % 7, i % 3]::real[], confidence => 0.5))
FROM generate_series(1, 50) i;
RESET ROLE;
SELECT engram.wait_linked('sec_space');
CREATE TEMP TABLE sec_before AS SELECT id, distance FROM engram.recall('sec_space', '{10,3,1}', 10);
SELECT count(*) FROM sec_before;
SELECT min(id) AS sec_first_id FROM engram.observations WHERE space_id = :sec_id \gset
SELECT name, owner FROM engram.space_catalog WHERE name = 'sec_space';

-- A role with USAGE only: every function that creates, changes, reads or
-- waits on a space refuses it.
SELECT sec_try('sec_usage', $$SELECT engram.create_space('sec_usage_space', 3)$$);
SELECT sec_try('sec_usage', $$SELECT engram.drop_space('sec_space')$$);
SELECT sec_try('sec_usage', $$SELECT engram.rebuild('sec_space')$$);
SELECT sec_try('sec_usage', $$SELECT engram.alter_space_owner('sec_space', 'sec_usage')$$);
SELECT sec_try('sec_usage', format('SELECT engram._rebuild(%s)', :sec_id));
SELECT sec_try('sec_usage', format('SELECT engram._forget_space(%s)', :sec_id));
SELECT sec_try('sec_usage', format('SELECT engram._stored_ids(%s)', :sec_id));
SELECT sec_try('sec_usage', $$SELECT engram.stored_ids('sec_space')$$);
SELECT sec_try('sec_usage', $$SELECT * FROM engram._space_state()$$);
SELECT sec_try('sec_usage', $$SELECT * FROM engram._worker_state()$$);
SELECT sec_try('sec_usage', $$SELECT * FROM engram.spaces$$);
SELECT sec_try('sec_usage', $$SELECT * FROM engram.workers$$);
SELECT sec_try('sec_usage', $$SELECT engram._published_generation()$$);
SELECT sec_try('sec_usage', $$SELECT engram._current_generation()$$);
SELECT sec_try('sec_usage', $$SELECT engram.current_generation('sec_space')$$);
SELECT sec_try('sec_usage', format('SELECT engram._wait_linked(%s, NULL, 0)', :sec_id));
SELECT sec_try('sec_usage', $$SELECT engram.wait_linked('sec_space', NULL, 0)$$);
SELECT sec_try('sec_usage', $$SELECT engram.wait_stored(0)$$);
SELECT sec_try('sec_usage', $$SELECT engram._require_preload()$$);
SELECT sec_try('sec_usage', $$SELECT * FROM engram.recall('sec_space', '{1,2,3}')$$);
SELECT sec_try('sec_usage', $$SELECT engram.observe('sec_space', '{1,2,3}')$$);
SELECT sec_try('sec_usage', $$SELECT engram.observe_batch('sec_space', '{{1,2,3}}')$$);
SELECT sec_try('sec_usage', $$SELECT engram.open_session('sec_space')$$);
SELECT sec_try('sec_usage', format('SELECT engram._claim_seq(gen_random_uuid(), %s, 1, 1)', :sec_id));
SELECT sec_try('sec_usage', $$UPDATE engram.space_catalog SET owner = 'sec_usage' WHERE name = 'sec_space'$$);
SELECT sec_try('sec_usage', $$DELETE FROM engram.observations$$);
-- What it may do: read the names and shapes of spaces, ask for pressure,
-- and call the pure helpers of observe (they reveal only what the catalog shows).
SELECT sec_try('sec_usage', $$SELECT count(*) FROM engram.space_catalog$$);
SELECT sec_try('sec_usage', $$SELECT level FROM engram.pressure()$$);
SELECT sec_try('sec_usage', format('SELECT engram._check_embedding(%s, ''{1,2,3}'')', :sec_id));
SELECT sec_try('sec_usage', format('SELECT engram._check_embedding(%s, ''{1,2}'')', :sec_id));
SELECT sec_try('sec_usage', $$SELECT * FROM engram._batch_rows('{{1,2}}', NULL, NULL)$$);

-- engram's trigger functions cannot be attached by roles without EXECUTE on
-- them (the attacks that crashed the server all began this way) ...
SELECT sec_try('sec_usage', $$
	CREATE TEMP TABLE sec_t (id bigint, space_id int, embedding bigint, confidence real);
	CREATE TRIGGER c AFTER INSERT ON sec_t FOR EACH ROW EXECUTE FUNCTION engram._capture()$$);
SELECT sec_try('sec_usage', $$
	CREATE TEMP TABLE sec_t (id bigint, space_id int);
	CREATE TRIGGER g BEFORE DELETE ON sec_t FOR EACH ROW EXECUTE FUNCTION engram._guard_immutable()$$);
SELECT sec_try('sec_usage', $$
	CREATE TEMP TABLE sec_t (space_id int);
	CREATE TRIGGER g BEFORE UPDATE ON sec_t FOR EACH ROW EXECUTE FUNCTION engram._guard_catalog()$$);
SELECT sec_try('sec_usage', $$SELECT engram._capture()$$);

-- ... and where EXECUTE was granted by mistake, they still fire only on
-- engram's own tables, whatever the columns' names and types and the rows.
GRANT EXECUTE ON FUNCTION engram._capture(), engram._guard_immutable(), engram._guard_catalog() TO sec_usage;
SELECT sec_try('sec_usage', format($$
	CREATE TEMP TABLE sec_t (id bigint, space_id int, embedding bigint, confidence real);
	CREATE TRIGGER c AFTER INSERT ON sec_t FOR EACH ROW EXECUTE FUNCTION engram._capture();
	INSERT INTO sec_t VALUES (1, %s, 1, 0.5)$$, :sec_id));
SELECT sec_try('sec_usage', format($$
	CREATE TEMP TABLE sec_t (id bigint, space_id int, embedding bytea, confidence real);
	CREATE TRIGGER c AFTER INSERT ON sec_t FOR EACH ROW EXECUTE FUNCTION engram._capture();
	INSERT INTO sec_t VALUES (1, %s, '\x0100000000000000bc020000', 0.5)$$, :sec_id));
-- right names and types, in a table called observations: the id of a real
-- observation with a vector it never had, a confidence past 1
SELECT sec_try('sec_usage', format($$
	CREATE TEMP TABLE observations (id bigint, space_id int, embedding real[], confidence real);
	CREATE TRIGGER c AFTER INSERT ON observations FOR EACH ROW EXECUTE FUNCTION engram._capture();
	INSERT INTO observations VALUES (%s, %s, '{10,3,1}', 7.5)$$, :sec_first_id, :sec_id));
-- a first row larger than an eighth of the ring, and rows of two dimensions
SELECT sec_try('sec_usage', format($$
	CREATE TEMP TABLE sec_t (id bigint, space_id int, embedding real[], confidence real);
	CREATE TRIGGER c AFTER INSERT ON sec_t FOR EACH ROW EXECUTE FUNCTION engram._capture();
	INSERT INTO sec_t SELECT 1, %s, array_fill(1::real, ARRAY[200000]), 0.5$$, :sec_id));
SELECT sec_try('sec_usage', format($$
	CREATE TEMP TABLE sec_t (id bigint, space_id int, embedding real[], confidence real);
	CREATE TRIGGER c AFTER INSERT ON sec_t FOR EACH ROW EXECUTE FUNCTION engram._capture();
	INSERT INTO sec_t VALUES (1, %s, '{1,2,3}', 0.5), (2, %s, '{1,2,3,4,5}', 0.5)$$, :sec_id, :sec_id));
SELECT sec_try('sec_usage', $$
	CREATE TEMP TABLE sec_t (id bigint, space_id int);
	INSERT INTO sec_t VALUES (1, 1);
	CREATE TRIGGER g BEFORE DELETE ON sec_t FOR EACH ROW EXECUTE FUNCTION engram._guard_immutable();
	DELETE FROM sec_t$$);
SELECT sec_try('sec_usage', $$
	CREATE TEMP TABLE space_catalog (space_id int, owner regrole);
	INSERT INTO space_catalog VALUES (1, 'sec_usage');
	CREATE TRIGGER g BEFORE UPDATE ON space_catalog FOR EACH ROW EXECUTE FUNCTION engram._guard_catalog();
	UPDATE space_catalog SET owner = 'sec_usage'$$);
REVOKE EXECUTE ON FUNCTION engram._capture(), engram._guard_immutable(), engram._guard_catalog() FROM sec_usage;

-- On engram.observations itself (only its owner can attach triggers there),
-- the functions insist on their event and on the columns' types.
BEGIN;
CREATE TRIGGER sec_wrong BEFORE INSERT ON engram.observations FOR EACH ROW EXECUTE FUNCTION engram._capture();
SELECT sec_try(NULL, $$SELECT engram.observe('sec_space', '{1,1,1}')$$);
ROLLBACK;
BEGIN;
CREATE TRIGGER sec_wrong AFTER INSERT ON engram.observations FOR EACH STATEMENT EXECUTE FUNCTION engram._capture();
SELECT sec_try(NULL, $$SELECT engram.observe('sec_space', '{1,1,1}')$$);
ROLLBACK;
BEGIN;
CREATE TRIGGER sec_wrong BEFORE INSERT ON engram.observations FOR EACH ROW
	EXECUTE FUNCTION engram._guard_immutable();
SELECT sec_try(NULL, $$SELECT engram.observe('sec_space', '{1,1,1}')$$);
ROLLBACK;
BEGIN;
ALTER TABLE engram.observations RENAME COLUMN confidence TO confidence_real;
ALTER TABLE engram.observations ADD COLUMN confidence float8 DEFAULT 0.5;
SELECT sec_try(NULL, $$SELECT engram.observe('sec_space', '{1,1,1}')$$);
ROLLBACK;
-- Without the table's CHECK constraints, the capture trigger still refuses
-- every row the ring must not carry.
BEGIN;
DO $$
DECLARE
	c name;
BEGIN
	FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = 'engram.observations'::regclass AND contype = 'c' LOOP
		EXECUTE format('ALTER TABLE engram.observations DROP CONSTRAINT %I', c);
	END LOOP;
END
$$;
SELECT sec_try(NULL, format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, '{1,2}')$$, :sec_id));
SELECT sec_try(NULL, format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, '{1,2,3,4,5}')$$, :sec_id));
SELECT sec_try(NULL, format($$INSERT INTO engram.observations (space_id, embedding)
							   VALUES (%s, array_fill(1::real, ARRAY[1500]))$$, :sec_id));
SELECT sec_try(NULL, format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, '{1,Infinity,3}')$$, :sec_id));
SELECT sec_try(NULL, format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, '{1,NULL,3}')$$, :sec_id));
SELECT sec_try(NULL, format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, '{{1,2,3}}')$$, :sec_id));
SELECT sec_try(NULL, format($$INSERT INTO engram.observations (space_id, embedding, confidence)
							   VALUES (%s, '{1,2,3}', 7.5)$$, :sec_id));
SELECT sec_try(NULL, format($$INSERT INTO engram.observations (space_id, embedding, confidence)
							   VALUES (%s, '{1,2,3}', 'NaN')$$, :sec_id));
ROLLBACK;

-- A reader may recall and list ids, and change nothing.
SELECT sec_try('sec_reader', $$SELECT count(*) FROM engram.recall('sec_space', '{1,2,3}', 5)$$);
SELECT sec_try('sec_reader', format('SELECT count(*) FROM engram._stored_ids(%s)', :sec_id));
SELECT sec_try('sec_reader', $$SELECT engram.current_generation('sec_space')$$);
SELECT sec_try('sec_reader', $$SELECT engram.wait_linked('sec_space')$$);
SELECT sec_try('sec_reader', $$SELECT engram.drop_space('sec_space')$$);
SELECT sec_try('sec_reader', $$SELECT engram.rebuild('sec_space')$$);
SELECT sec_try('sec_reader', $$SELECT engram.alter_space_owner('sec_space', 'sec_reader')$$);
SELECT sec_try('sec_reader', $$SELECT * FROM engram._space_state()$$);
SELECT sec_try('sec_reader', $$SELECT engram.observe('sec_space', '{1,2,3}')$$);
-- The views engram.spaces and engram.workers, and the functions behind them,
-- answer members of pg_monitor (and whoever else is granted SELECT on them).
GRANT pg_monitor TO sec_reader;
SELECT sec_try('sec_reader', $$SELECT count(*) FROM engram.spaces$$);
SELECT sec_try('sec_reader', $$SELECT count(*) FROM engram.workers$$);
SELECT sec_try('sec_reader', $$SELECT count(*) FROM engram._space_state()$$);
REVOKE pg_monitor FROM sec_reader;

-- A writer granted INSERT, UPDATE, DELETE and TRUNCATE on the catalog still
-- cannot change a space's owner, shape or id, nor make or remove spaces there.
SELECT sec_try('sec_writer', $$UPDATE engram.space_catalog SET owner = 'sec_writer' WHERE name = 'sec_space'$$);
SELECT sec_try('sec_writer', $$UPDATE engram.space_catalog SET dim = 2 WHERE name = 'sec_space'$$);
SELECT sec_try('sec_writer', $$UPDATE engram.space_catalog SET metric = 'ip' WHERE name = 'sec_space'$$);
SELECT sec_try('sec_writer', $$UPDATE engram.space_catalog SET space_id = 999999 WHERE name = 'sec_space'$$);
SELECT sec_try('sec_writer', $$UPDATE engram.space_catalog SET name = 'sec_renamed' WHERE name = 'sec_space'$$);
SELECT sec_try('sec_writer', $$INSERT INTO engram.space_catalog (name, dim, metric, m, ef_construction, owner)
							   VALUES ('sec_forged', 3, 'l2', 16, 200, 'sec_owner')$$);
SELECT sec_try('sec_writer', $$INSERT INTO engram.space_catalog (name, dim, metric, m, ef_construction)
							   VALUES ('sec_forged', 0, 'l2', 16, 200)$$);
SELECT sec_try('sec_writer', $$DELETE FROM engram.space_catalog WHERE name = 'sec_space'$$);
SELECT sec_try('sec_writer', $$TRUNCATE engram.space_catalog$$);
SELECT sec_try('sec_writer', $$TRUNCATE engram.space_catalog CASCADE$$);
SELECT sec_try('sec_writer', $$SELECT engram.create_space('sec_writer_space', 3)$$);
SELECT sec_try('sec_writer', $$SELECT engram.drop_space('sec_space')$$);
-- Forged rows through INSERT: other dimensions, bad components, confidences
-- outside [0, 1], unknown spaces, a taken id.
SELECT sec_try('sec_writer', format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, '{1,2}')$$, :sec_id));
SELECT sec_try('sec_writer', format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, '{1,2,3,4}')$$, :sec_id));
SELECT sec_try('sec_writer', format($$INSERT INTO engram.observations (space_id, embedding)
									  VALUES (%s, '{1,2,3}'), (%s, '{1,2,3,4,5}')$$, :sec_id, :sec_id));
SELECT sec_try('sec_writer', format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, '{1,NaN,3}')$$, :sec_id));
SELECT sec_try('sec_writer', format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, '{1,NULL,3}')$$, :sec_id));
SELECT sec_try('sec_writer', format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, '{{1,2,3}}')$$, :sec_id));
SELECT sec_try('sec_writer', format($$INSERT INTO engram.observations (space_id, embedding) VALUES (%s, NULL)$$, :sec_id));
SELECT sec_try('sec_writer', format($$INSERT INTO engram.observations (space_id, embedding, confidence)
									  VALUES (%s, '{1,2,3}', 7.5)$$, :sec_id));
SELECT sec_try('sec_writer', format($$INSERT INTO engram.observations (space_id, embedding, confidence)
									  VALUES (%s, '{1,2,3}', 'NaN')$$, :sec_id));
SELECT sec_try('sec_writer', $$INSERT INTO engram.observations (space_id, embedding) VALUES (999999, '{1,2,3}')$$);
SELECT sec_try('sec_writer', format($$INSERT INTO engram.observations (id, space_id, embedding)
									  VALUES (%s, %s, '{10,3,1}')$$, :sec_first_id, :sec_id));
SELECT sec_try('sec_writer', $$UPDATE engram.observations SET confidence = 1$$);

-- Owners and members of the owning role: giving a space away takes being
-- able to act as both the old and the new owner.
SELECT sec_try('sec_owner', $$SELECT engram.alter_space_owner('sec_space', 'sec_member')$$);
SELECT sec_try('sec_member', $$SELECT engram.alter_space_owner('sec_space', 'sec_usage')$$);
SELECT sec_try('sec_member', $$SELECT engram.alter_space_owner('sec_space', 'sec_member')$$);
SELECT owner FROM engram.space_catalog WHERE name = 'sec_space';
SELECT sec_try('sec_owner', $$SELECT engram.drop_space('sec_space')$$);
SELECT sec_try('sec_owner', $$SELECT engram.rebuild('sec_space')$$);
SELECT sec_try('sec_member', $$SELECT engram.alter_space_owner('sec_space', 'sec_owner')$$);
SELECT sec_try('sec_member', $$SELECT engram.rebuild('sec_space')$$);
SELECT sec_try('sec_owner', $$SELECT engram.alter_space_owner('nope', 'sec_owner')$$);
SELECT sec_try('sec_owner', $$SELECT engram.alter_space_owner('sec_space', NULL)$$);
SELECT sec_try('sec_owner', $$SELECT engram.alter_space_owner(NULL, 'sec_owner')$$);
SELECT sec_try('sec_owner', $$SELECT engram.alter_space_owner('sec_space', 4000000000::oid::regrole)$$);
-- superusers may give any space to anyone
SELECT sec_try(NULL, $$SELECT engram.alter_space_owner('sec_space', 'sec_reader')$$);
SELECT sec_try(NULL, $$SELECT engram.alter_space_owner('sec_space', 'sec_owner')$$);
SELECT owner FROM engram.space_catalog WHERE name = 'sec_space';
-- An owner drops its own space although it may not delete from either table.
SET ROLE sec_owner;
SELECT engram.create_space('sec_scratch', 2, 'ip') AS scratch_id \gset
SELECT engram.observe_batch('sec_scratch', '{{1,2},{3,4},{5,6}}');
RESET ROLE;
SELECT sec_try('sec_owner', $$DELETE FROM engram.observations$$);
SELECT sec_try('sec_owner', $$DELETE FROM engram.space_catalog$$);
SELECT sec_try('sec_owner', $$SELECT engram.drop_space('sec_scratch')$$);
SELECT count(*) AS scratch_rows FROM engram.observations WHERE space_id = :scratch_id;
SELECT count(*) AS scratch_spaces FROM engram.space_catalog WHERE name = 'sec_scratch';

-- A search_path that puts operators of the caller's choice before
-- pg_catalog chooses nothing that engram runs: every function and every
-- statement inside them name their operators and objects with the schema.
CREATE SCHEMA sec_evil;
DO $do$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['int4', 'int8', 'text', 'uuid'] LOOP
		EXECUTE format($f$CREATE FUNCTION sec_evil.captured(a %1$s, b %1$s) RETURNS boolean LANGUAGE plpgsql AS $b$
						   BEGIN RAISE EXCEPTION 'operator captured for %1$s'; END $b$$f$, t);
		EXECUTE format('CREATE OPERATOR sec_evil.= (FUNCTION = sec_evil.captured, LEFTARG = %1$s, RIGHTARG = %1$s)', t);
	END LOOP;
	CREATE OPERATOR sec_evil.<> (FUNCTION = sec_evil.captured, LEFTARG = int4, RIGHTARG = int4);
	CREATE OPERATOR sec_evil.> (FUNCTION = sec_evil.captured, LEFTARG = int8, RIGHTARG = int8);
END
$do$;
SET search_path = sec_evil, pg_catalog, public;
SELECT 1 = 1 AS trap_is_armed;
SELECT engram.create_space('sec_path', 3) IS NOT NULL AS created;
SELECT engram.observe('sec_path', '{1,2,3}') IS NOT NULL AS observed;
SELECT engram.observe_batch('sec_path', '{{1,2,4},{1,2,5}}');
SELECT engram.open_session('sec_path') AS sec_session \gset
SELECT engram.observe('sec_path', '{1,3,3}', session => :'sec_session', seq => 1) IS NOT NULL AS observed;
SELECT engram.observe('sec_path', '{1,3,3}', session => :'sec_session', seq => 1) IS NOT NULL AS acknowledged;
SELECT engram.observe_batch('sec_path', '{{1,3,4}}', session => :'sec_session', seq => 2);
SELECT engram.close_session(:'sec_session');
SELECT engram.wait_linked('sec_path');
SELECT engram.current_generation('sec_path') IS NOT NULL AS has_generation;
SELECT count(*) AS recalled FROM engram.recall('sec_path', '{1,2,3}', 3);
SELECT count(*) AS stored FROM engram.stored_ids('sec_path');
SELECT name AS listed FROM engram.spaces WHERE name LIKE 'sec_path';
SELECT engram.rebuild('sec_path');
SELECT engram.alter_space_owner('sec_path', 'sec_owner');
SELECT engram.drop_space('sec_path');
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA sec_evil CASCADE;
RESET client_min_messages;

-- A reinstall starts space ids again: the shapes this session remembers
-- from the old catalog (sec_space is 3-d) must not judge a new space that
-- gets the same id.
BEGIN;
DROP EXTENSION engram CASCADE;
CREATE EXTENSION engram;
SELECT setval('engram.space_catalog_space_id_seq', :sec_id, false) = :sec_id AS same_id_next;
SELECT engram.create_space('sec_again', 5, 'l2') = :sec_id AS same_id;
SELECT engram.observe('sec_again', '{1,2,3,4,5}') IS NOT NULL AS observed;
SELECT sec_try(NULL, $$SELECT engram.observe('sec_again', '{1,2,3}')$$);
ROLLBACK;

-- The owner's space answers exactly as before, holds exactly its rows, and
-- keeps its owner and shape.
SELECT engram.wait_linked('sec_space');
SELECT count(*) AS changed FROM (
	(SELECT id, distance FROM engram.recall('sec_space', '{10,3,1}', 10) EXCEPT SELECT * FROM sec_before)
	UNION ALL
	(SELECT * FROM sec_before EXCEPT SELECT id, distance FROM engram.recall('sec_space', '{10,3,1}', 10))) d;
SELECT count(*) AS stored, count(*) FILTER (WHERE o.id IS NULL) AS strangers
FROM engram.stored_ids('sec_space') s(id) LEFT JOIN engram.observations o USING (id);
SELECT count(*) AS rows FROM engram.observations WHERE space_id = :sec_id;
SELECT name, dim, metric, owner FROM engram.space_catalog WHERE name LIKE 'sec%' ORDER BY name;

SELECT engram.drop_space('sec_space');
DROP FUNCTION sec_try(name, text);
DROP OWNED BY sec_owner, sec_member, sec_usage, sec_reader, sec_writer;
DROP ROLE sec_owner, sec_member, sec_usage, sec_reader, sec_writer;
