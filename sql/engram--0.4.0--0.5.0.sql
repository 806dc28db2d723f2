-- engram 0.4.0 -> 0.5.0: storage encodings. A space's index holds its
-- vectors as f32 (exact), f16 or sq8 (quantized, with recall re-ranking its
-- candidates by the exact vectors of engram.observations); see "Choosing
-- storage" in docs/usage.md. Spaces created before keep f32.
\echo Use "ALTER EXTENSION engram UPDATE TO '0.5.0'" to load this file. \quit

SELECT engram._require_preload();

-- A space's storage never changes, like the rest of its definition (the
-- guard refuses updates but from engram's own functions, which set none).
-- The column is part of the catalog's rows, so pg_dump keeps it.
ALTER TABLE engram.space_catalog ADD COLUMN storage text NOT NULL DEFAULT 'f32'
	CONSTRAINT space_catalog_storage_check CHECK (storage OPERATOR(pg_catalog.=) ANY (ARRAY['f32', 'f16', 'sq8']));

-- create_space takes the storage. The new signature is created beside the
-- old one, so that the roles granted EXECUTE on the old one (create_space is
-- granted role by role) can be granted it on the new one before the old one
-- goes.
CREATE FUNCTION engram.create_space(name text, dim int DEFAULT 768, metric text DEFAULT 'cosine',
									m int DEFAULT 16, ef_construction int DEFAULT 200, storage text DEFAULT 'f32')
RETURNS int AS 'MODULE_PATHNAME', 'engram_create_space' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION engram.create_space(text, int, text, int, int, text) FROM PUBLIC;

DO LANGUAGE plpgsql $$
DECLARE
	g record;
BEGIN
	FOR g IN
		SELECT a.grantee, a.is_grantable
		  FROM pg_catalog.pg_proc p
		 CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
		 WHERE p.oid OPERATOR(pg_catalog.=) 'engram.create_space(text, int, text, int, int)'::pg_catalog.regprocedure
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
	LOOP
		EXECUTE pg_catalog.format(
			'GRANT EXECUTE ON FUNCTION engram.create_space(text, int, text, int, int, text) TO %s%s',
			CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
				 ELSE g.grantee::pg_catalog.regrole::pg_catalog.text END,
			CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
END
$$;
DROP FUNCTION engram.create_space(text, int, text, int, int);

----------------------------------------------------------------------------
-- engram.spaces shows each space's storage (in the last column, where a
-- view may grow).
----------------------------------------------------------------------------
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
	   coalesce(g.forgotten, 0) AS forgotten,
	   c.storage
FROM engram.space_catalog c
LEFT JOIN engram._space_state() s ON s.space_id = c.space_id
LEFT JOIN engram._space_files() f ON f.space_id = c.space_id
LEFT JOIN engram._space_forgotten() g ON g.space_id = c.space_id
CROSS JOIN LATERAL engram._space_condition(c.space_id) q;
