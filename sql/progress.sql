-- engram.progress: a row per long operation in flight (src/pg/progress.hpp;
-- test/t/027_progress.pl watches a rebuild and a start-up load). Here: its
-- columns, the names it uses, and who may read it.
\set SHOW_CONTEXT never

SELECT attname, format_type(atttypid, atttypmod) AS type
FROM pg_attribute WHERE attrelid = 'engram.progress'::regclass AND attnum > 0 ORDER BY attnum;

-- Whatever runs now (the writer may be writing a graph file) is one of the
-- documented operations and phases, with its counts in range.
SELECT count(*) AS undocumented FROM engram.progress
WHERE operation NOT IN ('load', 'rebuild', 'compaction', 'file write')
   OR phase NOT IN ('reading graph file', 'reading rows', 'linking', 'copying', 'writing', 'syncing')
   OR rows_done < 0 OR rows_done > rows_total OR started_at > now() OR pid IS NULL;

-- The function behind the view pins search_path and is not PUBLIC's.
SELECT proconfig FROM pg_proc WHERE oid = 'engram._progress()'::regprocedure;
SELECT has_function_privilege('public', 'engram._progress()', 'EXECUTE') AS public_may_execute,
	   has_function_privilege('pg_monitor', 'engram._progress()', 'EXECUTE') AS monitor_may_execute,
	   has_table_privilege('pg_monitor', 'engram.progress', 'SELECT') AS monitor_may_select;

-- Refused to a role without pg_monitor (both may use the schema), even when
-- granted SELECT on the view: the view answers the roles that may execute
-- its function. Answered to a member of pg_monitor.
CREATE ROLE progress_nobody;
CREATE ROLE progress_monitor IN ROLE pg_monitor;
GRANT USAGE ON SCHEMA engram TO progress_nobody, progress_monitor;
SET ROLE progress_nobody;
SELECT count(*) FROM engram.progress;
SELECT count(*) FROM engram._progress();
RESET ROLE;
GRANT SELECT ON engram.progress TO progress_nobody;
SET ROLE progress_nobody;
SELECT count(*) FROM engram.progress;
RESET ROLE;
SET ROLE progress_monitor;
SELECT count(*) >= 0 AS monitor_may_read FROM engram.progress;
RESET ROLE;
REVOKE SELECT ON engram.progress FROM progress_nobody;
REVOKE USAGE ON SCHEMA engram FROM progress_nobody, progress_monitor;
DROP ROLE progress_nobody, progress_monitor;
