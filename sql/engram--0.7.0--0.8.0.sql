-- engram 0.7.0 -> 0.8.0: operations. What each part adds is described where
-- it is defined below.
\echo Use "ALTER EXTENSION engram UPDATE TO '0.8.0'" to load this file. \quit

SELECT engram._require_preload();

----------------------------------------------------------------------------
-- engram.progress: a row per long operation in flight (a start-up load, a
-- rebuild, a compaction, a graph file write) with its phase and the rows it
-- has done of how many, like PostgreSQL's pg_stat_progress_* views
-- (docs/operations.md, "Progress"). For pg_monitor, like engram.spaces and
-- engram.memory_usage(): the function behind the view is revoked from
-- PUBLIC, so the view answers the roles that may execute it.
----------------------------------------------------------------------------
CREATE FUNCTION engram._progress(OUT pid int, OUT space_id int, OUT operation text, OUT phase text,
								 OUT rows_done bigint, OUT rows_total bigint, OUT started_at timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'engram_progress' LANGUAGE C
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION engram._progress() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION engram._progress() TO pg_monitor;

CREATE VIEW engram.progress AS
SELECT p.pid, c.name AS space, p.operation, p.phase, p.rows_done, p.rows_total, p.started_at
FROM engram._progress() p
LEFT JOIN engram.space_catalog c ON c.space_id OPERATOR(pg_catalog.=) p.space_id;
REVOKE ALL ON engram.progress FROM PUBLIC;
GRANT SELECT ON engram.progress TO pg_monitor;
