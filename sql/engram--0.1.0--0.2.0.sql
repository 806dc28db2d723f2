-- engram 0.1.0 -> 0.2.0: the privilege boundary, backups and one identity per
-- installation. A fresh CREATE EXTENSION runs 0.1.0 and then this script, so
-- every install goes through the upgrade path that existing databases take.
\echo Use "ALTER EXTENSION engram UPDATE TO '0.2.0'" to load this file. \quit

----------------------------------------------------------------------------
-- space state: every space takes its slot in the shared space directory as it
-- is created (a full directory refuses it with SQLSTATE 54000), and
-- engram.spaces says whether its index is ready, loading or quarantined, and why.
----------------------------------------------------------------------------
CREATE FUNCTION engram._register_space() RETURNS trigger
	AS 'MODULE_PATHNAME', 'engram_register_space' LANGUAGE C;
CREATE TRIGGER register AFTER INSERT ON engram.space_catalog
	FOR EACH ROW EXECUTE FUNCTION engram._register_space();

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
