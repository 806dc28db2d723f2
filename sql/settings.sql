-- The engram.* settings: names, units, ranges, contexts, and who may change them.
\set SHOW_CONTEXT never
SELECT name, setting, unit, context, vartype, min_val, max_val, enumvals, short_desc
FROM pg_settings WHERE name LIKE 'engram.%' ORDER BY name;
SELECT try($$SET engram.workers = 3$$);
SELECT try($$SET engram.ring_size = '8MB'$$);
SELECT try($$SET engram.memory_limit = '1GB'$$);
SELECT try($$SET engram.database = 'other'$$);
SELECT try($$SET engram.pressure_warning = 0.3$$);
SELECT try($$SET engram.overload_policy = 'sometimes'$$);
SELECT try($$SET engram.overload_timeout = -1$$);
-- The ceiling on the overload wait is the server's: no session or role sets it.
SELECT try($$SET engram.max_overload_timeout = '1h'$$);
SELECT try($$SET LOCAL engram.max_overload_timeout = 0$$);
SELECT try($$ALTER ROLE CURRENT_USER SET engram.max_overload_timeout = '1h'$$);
SELECT try($$SELECT set_config('engram.max_overload_timeout', '3600000', false)$$);
SELECT try($$SET engram.pause_linking = on$$);
SELECT try($$SET engram.no_such_setting = 1$$);
SET engram.overload_policy = 'error';
SHOW engram.overload_policy;
SET engram.overload_timeout = '2s';
SHOW engram.overload_timeout;
-- Waits above the ceiling may be asked for; the commit waits at most the ceiling.
SET engram.overload_timeout = '1h';
SHOW engram.overload_timeout;
SHOW engram.max_overload_timeout;
RESET engram.overload_policy;
RESET engram.overload_timeout;
