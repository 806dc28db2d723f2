-- engram 0.1.0 -> 0.2.0: the privilege boundary, backups and one identity per
-- installation. A fresh CREATE EXTENSION runs 0.1.0 and then this script, so
-- every install goes through the upgrade path that existing databases take.
\echo Use "ALTER EXTENSION engram UPDATE TO '0.2.0'" to load this file. \quit

----------------------------------------------------------------------------
-- Backups and identity
----------------------------------------------------------------------------
-- engram serves the one database engram.database names: refuse to update an
-- installation anywhere else (its rows would never reach the workers).
SELECT engram._require_preload();

-- pg_dump leaves an extension's tables out of a dump unless they are marked
-- as configuration: these hold every user row (spaces, observations,
-- sessions), and their sequences carry on after the restored ids, so a
-- restore keeps space ids and observation ids and new ones never collide.
-- The indexes are not dumped: the restore's COPY into engram.observations
-- passes the capture trigger, and the workers index the rows as they commit.
SELECT pg_catalog.pg_extension_config_dump('engram.space_catalog', '');
SELECT pg_catalog.pg_extension_config_dump('engram.space_catalog_space_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('engram.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('engram.observations', '');
SELECT pg_catalog.pg_extension_config_dump('engram.observations_id_seq', '');

----------------------------------------------------------------------------
-- Privileges: who may create, change, read and wait on spaces (docs/usage.md,
-- "Privileges"). Every C function is either revoked from PUBLIC or checks its
-- caller itself; every SQL and PL/pgSQL function runs with search_path fixed
-- to pg_catalog, pg_temp, so that no schema of the caller's chooses the
-- functions or operators it runs (engram objects are named with their schema
-- everywhere, and pg_temp is never searched for functions or operators).
----------------------------------------------------------------------------

-- Creating a space takes EXECUTE on create_space, granted role by role
-- (rather than CREATE on schema engram, which would also let those roles put
-- functions and operators into the schema that every user of engram calls).
-- The creating role owns the space. C, so that it can insert the catalog row
-- for a caller who has no privilege on engram.space_catalog.
CREATE OR REPLACE FUNCTION engram.create_space(name text, dim int DEFAULT 768, metric text DEFAULT 'cosine',
											   m int DEFAULT 16, ef_construction int DEFAULT 200)
RETURNS int AS 'MODULE_PATHNAME', 'engram_create_space' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION engram.create_space(text, int, text, int, int) FROM PUBLIC;

-- drop_space checks that the caller may act as the space's owner, then
-- deletes its rows and catalog row itself; _forget_space, which let anyone
-- empty any space's index, is gone.
CREATE OR REPLACE FUNCTION engram.drop_space(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'engram_drop_space' LANGUAGE C VOLATILE;
DROP FUNCTION engram._forget_space(int);

-- Gives a space to another role, by the rules of ALTER TABLE ... OWNER TO:
-- the caller must have the privileges of the current owner and be a member
-- of the new one.
CREATE FUNCTION engram.alter_space_owner(space text, new_owner regrole) RETURNS void
	AS 'MODULE_PATHNAME', 'engram_alter_space_owner' LANGUAGE C VOLATILE;

-- _rebuild checks the owner itself, so rebuild only resolves the name.
CREATE OR REPLACE FUNCTION engram.rebuild(space text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM engram._rebuild(engram._space_id(space));
END
$$;

-- Resolving a name is C too: every call of a function with a pinned
-- search_path changes a setting and back (about 2 us, measured), and
-- observe() would pay that twice.
CREATE OR REPLACE FUNCTION engram._space_id(space text) RETURNS int
	AS 'MODULE_PATHNAME', 'engram_space_id' LANGUAGE C STABLE;

-- The catalog changes only through the functions above (running as the
-- tables' owner) or by superusers, whatever else is granted on it.
CREATE FUNCTION engram._guard_catalog() RETURNS trigger
	AS 'MODULE_PATHNAME', 'engram_guard_catalog' LANGUAGE C;
CREATE TRIGGER guard BEFORE INSERT OR UPDATE OR DELETE ON engram.space_catalog
	FOR EACH ROW EXECUTE FUNCTION engram._guard_catalog();
CREATE TRIGGER guard_truncate BEFORE TRUNCATE ON engram.space_catalog
	FOR EACH STATEMENT EXECUTE FUNCTION engram._guard_catalog();

-- Trigger functions can be attached only by roles with EXECUTE on them (and
-- they check in C where they fire); the preload check runs only at install.
REVOKE ALL ON FUNCTION engram._capture() FROM PUBLIC;
REVOKE ALL ON FUNCTION engram._guard_immutable() FROM PUBLIC;
REVOKE ALL ON FUNCTION engram._guard_catalog() FROM PUBLIC;
REVOKE ALL ON FUNCTION engram._require_preload() FROM PUBLIC;

-- The state functions behind the views answer whoever may read the view
-- (checked in C: a view checks EXECUTE on its functions as its reader).
GRANT SELECT ON engram.spaces, engram.workers TO pg_monitor;

ALTER FUNCTION engram.open_session(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION engram.close_session(uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION engram._claim_seq(uuid, int, bigint, bigint) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION engram.observe(text, real[], text, real, jsonb, uuid, bigint) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION engram.observe_batch(text, real[], text[], real[], uuid, bigint)
	SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION engram.current_generation(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION engram.stored_ids(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION engram.wait_linked(text, bigint, int) SET search_path = pg_catalog, pg_temp;

----------------------------------------------------------------------------
-- space state: every space takes its slot in the shared space directory as it
-- is created (a full directory refuses it with SQLSTATE 54000), and
-- engram.spaces says whether its index is ready, loading or quarantined, and why.
----------------------------------------------------------------------------
CREATE FUNCTION engram._register_space() RETURNS trigger
	AS 'MODULE_PATHNAME', 'engram_register_space' LANGUAGE C;
CREATE TRIGGER register AFTER INSERT ON engram.space_catalog
	FOR EACH ROW EXECUTE FUNCTION engram._register_space();
REVOKE ALL ON FUNCTION engram._register_space() FROM PUBLIC;

CREATE FUNCTION engram._space_condition(space_id int, OUT state text, OUT state_detail text)
RETURNS record AS 'MODULE_PATHNAME', 'engram_space_condition' LANGUAGE C STRICT;

CREATE OR REPLACE VIEW engram.spaces AS
SELECT c.space_id, c.name, c.dim, c.metric, c.m, c.ef_construction,
	   coalesce(s.stored, 0) AS observations,
	   coalesce(s.linked, 0) AS linked,
	   coalesce(s.stored, 0) - coalesce(s.linked, 0) AS pending,
	   coalesce(s.generation, 0) AS generation,
	   coalesce(s.memory_bytes, 0) AS memory_bytes,
	   c.owner,
	   q.state,
	   q.state_detail
FROM engram.space_catalog c
LEFT JOIN engram._space_state() s ON s.space_id = c.space_id
CROSS JOIN LATERAL engram._space_condition(c.space_id) q;

----------------------------------------------------------------------------
-- Fair admission between spaces: the pressure a commit into one space meets
-- (a space holding more than its share of the pipeline waits; others go on).
----------------------------------------------------------------------------
CREATE FUNCTION engram.pressure(space text, OUT level text, OUT fill real, OUT pending bigint,
								OUT retry_after_ms int, OUT suggested_batch int)
RETURNS record AS 'MODULE_PATHNAME', 'engram_space_pressure' LANGUAGE C;
