-- engram 0.2.0 -> 0.3.0: durable indexes. The engram writer keeps each space's
-- index in a graph file under the data directory, and a start loads the files
-- instead of relinking every row (docs/operations.md).
\echo Use "ALTER EXTENSION engram UPDATE TO '0.3.0'" to load this file. \quit

SELECT engram._require_preload();

----------------------------------------------------------------------------
-- engram.checkpoint(): write every graph file now (before maintenance, in
-- tests). Like CHECKPOINT: superusers and members of pg_checkpoint.
----------------------------------------------------------------------------
CREATE FUNCTION engram.checkpoint() RETURNS void
	AS 'MODULE_PATHNAME', 'engram_checkpoint' LANGUAGE C
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION engram.checkpoint() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION engram.checkpoint() TO pg_checkpoint;

----------------------------------------------------------------------------
-- engram.spaces: what each space's graph file holds. The function checks
-- that its caller may read engram.spaces, as _space_state does.
----------------------------------------------------------------------------
CREATE FUNCTION engram._space_files(OUT space_id int, OUT persisted_observations bigint,
									OUT persisted_generation bigint, OUT persisted_at timestamptz,
									OUT file_bytes bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'engram_space_files' LANGUAGE C
	SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE VIEW engram.spaces AS
SELECT c.space_id, c.name, c.dim, c.metric, c.m, c.ef_construction,
	   coalesce(s.stored, 0) AS observations,
	   coalesce(s.linked, 0) AS linked,
	   coalesce(s.stored, 0) - coalesce(s.linked, 0) AS pending,
	   coalesce(s.generation, 0) AS generation,
	   coalesce(s.memory_bytes, 0) AS memory_bytes,
	   c.owner,
	   q.state,
	   q.state_detail,
	   coalesce(f.persisted_observations, 0) AS persisted_observations,
	   coalesce(f.persisted_generation, 0) AS persisted_generation,
	   f.persisted_at,
	   coalesce(f.file_bytes, 0) AS file_bytes
FROM engram.space_catalog c
LEFT JOIN engram._space_state() s ON s.space_id = c.space_id
LEFT JOIN engram._space_files() f ON f.space_id = c.space_id
CROSS JOIN LATERAL engram._space_condition(c.space_id) q;
