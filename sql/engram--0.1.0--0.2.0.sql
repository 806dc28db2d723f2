-- engram 0.1.0 -> 0.2.0: the privilege boundary, backups and one identity per
-- installation. A fresh CREATE EXTENSION runs 0.1.0 and then this script, so
-- every install goes through the upgrade path that existing databases take.
\echo Use "ALTER EXTENSION engram UPDATE TO '0.2.0'" to load this file. \quit

----------------------------------------------------------------------------
-- Fair admission between spaces: the pressure a commit into one space meets
-- (a space holding more than its share of the pipeline waits; others go on).
----------------------------------------------------------------------------
CREATE FUNCTION engram.pressure(space text, OUT level text, OUT fill real, OUT pending bigint,
								OUT retry_after_ms int, OUT suggested_batch int)
RETURNS record AS 'MODULE_PATHNAME', 'engram_space_pressure' LANGUAGE C;
