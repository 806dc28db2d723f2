-- engram 0.3.0 -> 0.4.0: forgetting, filters and scoring. Observations can be
-- deleted and their content, confidence and metadata updated; recall filters
-- on metadata and time and can weigh recency and confidence (docs/usage.md).
\echo Use "ALTER EXTENSION engram UPDATE TO '0.4.0'" to load this file. \quit

SELECT engram._require_preload();

----------------------------------------------------------------------------
-- Forgetting. DELETE and UPDATE reach the index through the capture trigger,
-- which now fires on all three events (ALWAYS, so replication apply feeds it
-- too): a DELETE hides the row from the deleting commit's generation on, an
-- UPDATE of confidence, metadata or observed_at replaces the row's version
-- at that generation, an UPDATE of content alone changes nothing the index
-- holds, and one of embedding, space_id or id is refused by the trigger.
-- TRUNCATE stays refused: it fires no row trigger.
----------------------------------------------------------------------------
DROP TRIGGER immutable ON engram.observations;
CREATE TRIGGER capture_change AFTER UPDATE OR DELETE ON engram.observations
	FOR EACH ROW EXECUTE FUNCTION engram._capture();
ALTER TABLE engram.observations ENABLE ALWAYS TRIGGER capture_change;

-- Every transaction that deletes or updates rows of a space leaves a row
-- here (the trigger inserts it, once per space and transaction), so a start
-- can tell whether a space's graph file predates a change to its rows; the
-- writer prunes the rows its files cover. Derived state: not dumped.
CREATE TABLE engram.revisions (
	revision bigserial PRIMARY KEY,
	space_id int NOT NULL
);
CREATE INDEX revisions_space ON engram.revisions (space_id, revision);
REVOKE ALL ON engram.revisions FROM PUBLIC;

-- Forgets too many for the ring: a transaction that deletes (or updates)
-- more non-consecutive ids than its ring records could carry writes them
-- here, as arrays of (first, last) id pairs in chunks, under a spill key
-- (its full transaction id); its ring record carries only the key, and the
-- worker reads the ids back, forgets them at the record's generation and
-- deletes the chunks. Only the trigger (as the tables' owner) and the
-- workers touch it. Transient state: unlogged (so neither WAL, replication
-- nor a crash keeps it: after a crash the load reads the table, where the
-- deleted rows are gone), not dumped, and cleared by the load at start-up.
CREATE UNLOGGED TABLE engram._forget_spill (
	spill bigint NOT NULL,
	space_id int NOT NULL,
	chunk int NOT NULL,
	ranges bigint[] NOT NULL,
	PRIMARY KEY (spill, space_id, chunk)
);
REVOKE ALL ON engram._forget_spill FROM PUBLIC;

CREATE FUNCTION engram.forget(space text, ids bigint[]) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	sid int := engram._space_id(space);
	n bigint;
BEGIN
	IF ids IS NULL THEN
		RAISE EXCEPTION 'ids must not be null' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Pass the ids of the observations to forget, e.g. ARRAY[17, 42].';
	END IF;
	DELETE FROM engram.observations o
	 WHERE o.space_id OPERATOR(pg_catalog.=) sid AND o.id OPERATOR(pg_catalog.=) ANY (ids);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

CREATE FUNCTION engram.forget_before(space text, observed_before timestamptz) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	sid int := engram._space_id(space);
	n bigint;
BEGIN
	IF observed_before IS NULL THEN
		RAISE EXCEPTION 'observed_before must not be null' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Pass the time before which observations are forgotten, e.g. now() - interval ''30 days''.';
	END IF;
	DELETE FROM engram.observations o
	 WHERE o.space_id OPERATOR(pg_catalog.=) sid AND o.observed_at OPERATOR(pg_catalog.<) observed_before;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

----------------------------------------------------------------------------
-- Recall filters on metadata and time and may weigh recency and confidence;
-- it also returns each row's observed_at. The C function reads the old
-- five arguments too, for a library newer than the catalog.
----------------------------------------------------------------------------
DROP FUNCTION engram.recall(text, real[], int, bigint, real);
CREATE FUNCTION engram.recall(space text, cue real[], k int DEFAULT 10, as_of bigint DEFAULT NULL,
							  min_confidence real DEFAULT 0, filter jsonb DEFAULT NULL,
							  observed_after timestamptz DEFAULT NULL, observed_before timestamptz DEFAULT NULL,
							  recency_half_life interval DEFAULT NULL, confidence_weight real DEFAULT 0)
RETURNS TABLE(id bigint, distance real, score real, confidence real, generation bigint, observed_at timestamptz)
AS 'MODULE_PATHNAME', 'engram_recall' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 10;

----------------------------------------------------------------------------
-- engram.spaces: observations deleted but not erased from the index yet
-- (hidden from recall; a compaction removes them within engram.erase_within).
-- `observations` counts the live rows only; `pending` counts the nodes not
-- linked yet (forgotten ones included: the linkers still link them), and
-- `linked` the rest of the live rows. The function checks that its caller
-- may read engram.spaces.
----------------------------------------------------------------------------
CREATE FUNCTION engram._space_forgotten(OUT space_id int, OUT forgotten bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'engram_space_forgotten' LANGUAGE C
	SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE VIEW engram.spaces AS
SELECT c.space_id, c.name, c.dim, c.metric, c.m, c.ef_construction,
	   coalesce(s.stored, 0) - coalesce(g.forgotten, 0) AS observations,
	   greatest(coalesce(s.linked, 0) - coalesce(g.forgotten, 0), 0) AS linked,
	   coalesce(s.stored, 0) - coalesce(s.linked, 0) AS pending,
	   coalesce(s.generation, 0) AS generation,
	   coalesce(s.memory_bytes, 0) AS memory_bytes,
	   c.owner,
	   q.state,
	   q.state_detail,
	   coalesce(f.persisted_observations, 0) AS persisted_observations,
	   coalesce(f.persisted_generation, 0) AS persisted_generation,
	   f.persisted_at,
	   coalesce(f.file_bytes, 0) AS file_bytes,
	   coalesce(g.forgotten, 0) AS forgotten
FROM engram.space_catalog c
LEFT JOIN engram._space_state() s ON s.space_id = c.space_id
LEFT JOIN engram._space_files() f ON f.space_id = c.space_id
LEFT JOIN engram._space_forgotten() g ON g.space_id = c.space_id
CROSS JOIN LATERAL engram._space_condition(c.space_id) q;

----------------------------------------------------------------------------
-- engram.audit_erasure(embedding): where a vector (a forgotten one) still
-- occurs in engram's shared memory and graph files, as given or normalised.
-- Superusers only (checked in C too): it reads every space's vectors.
----------------------------------------------------------------------------
CREATE FUNCTION engram.audit_erasure(embedding real[]) RETURNS TABLE(place text, occurrences bigint)
	AS 'MODULE_PATHNAME', 'engram_audit_erasure' LANGUAGE C
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION engram.audit_erasure(real[]) FROM PUBLIC;
