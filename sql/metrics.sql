-- engram.metrics(): the Prometheus text exposition (format 0.0.4) of
-- engram's counters, gauges and latency histograms, for pg_monitor.
\set SHOW_CONTEXT never

-- Privileges: refused to a role without pg_monitor, answered to a member
-- (both may use the schema).
CREATE ROLE metrics_nobody;
CREATE ROLE metrics_monitor IN ROLE pg_monitor;
GRANT USAGE ON SCHEMA engram TO metrics_nobody, metrics_monitor;
SET ROLE metrics_nobody;
SELECT engram.metrics() IS NOT NULL AS nobody_may_scrape;
RESET ROLE;
SET ROLE metrics_monitor;
SELECT engram.metrics() LIKE '# HELP %' AS monitor_may_scrape;
RESET ROLE;
REVOKE USAGE ON SCHEMA engram FROM metrics_nobody, metrics_monitor;
DROP ROLE metrics_nobody, metrics_monitor;

-- A scrape as rows: (line number, line) and its samples as (name, labels, value).
CREATE FUNCTION metric_lines(scrape text) RETURNS TABLE(n bigint, line text) LANGUAGE sql AS $$
	SELECT n, line FROM regexp_split_to_table(rtrim(scrape, E'\n'), E'\n') WITH ORDINALITY AS t(line, n)
$$;
CREATE FUNCTION metric_samples(scrape text) RETURNS TABLE(n bigint, name text, labels text, value float8)
LANGUAGE sql AS $$
	SELECT n, m[1], coalesce(m[2], ''), m[3]::float8
	FROM metric_lines(scrape), regexp_match(line, '^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$') AS m
	WHERE line NOT LIKE '#%'
$$;
-- One sample's value (0 if absent).
CREATE FUNCTION metric_value(scrape text, metric text, label text DEFAULT '') RETURNS float8 LANGUAGE sql AS $$
	SELECT coalesce((SELECT value FROM metric_samples(scrape) WHERE name = metric AND labels = label), 0)
$$;

-- A space with one row, stored and linked: the workers have loaded the
-- installation, so what is committed from now on reaches them through the ring.
SELECT engram.create_space('metrics_space', 3, 'l2') > 0 AS created;
SELECT engram.observe('metrics_space', '{0,1,2}') > 0 AS observed;
SELECT engram.wait_stored() AS stored, engram.wait_linked('metrics_space') AS linked;

CREATE TEMP TABLE before AS SELECT engram.metrics() AS scrape;

-- Every line is a HELP or TYPE comment or a sample: a metric name, labels
-- (name="value" with \\, \" and \n escaped) and a number.
SELECT n, line FROM before, metric_lines(scrape)
WHERE line !~ '^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* \S.*$'
  AND line !~ '^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram)$'
  AND line !~ ('^[a-zA-Z_:][a-zA-Z0-9_:]*'
			   '(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*\})?'
			   ' ([-+]?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|\+Inf|-Inf)$');
-- Every family has one HELP and one TYPE line, and counters end in _total.
CREATE TEMP VIEW families AS
SELECT m[1] AS kind, m[2] AS family, m[3] AS rest
FROM before, metric_lines(scrape), regexp_match(line, '^# (HELP|TYPE) (\S+) (.*)$') AS m
WHERE m IS NOT NULL;
SELECT family, count(*) FILTER (WHERE kind = 'HELP') AS helps, count(*) FILTER (WHERE kind = 'TYPE') AS types
FROM families GROUP BY family HAVING count(*) FILTER (WHERE kind = 'HELP') <> 1 OR count(*) FILTER (WHERE kind = 'TYPE') <> 1;
SELECT family FROM families WHERE kind = 'TYPE' AND rest = 'counter' AND family !~ '_total$';
-- Every sample belongs to a family with a TYPE (a histogram's as
-- _bucket, _sum and _count), and follows the TYPE line of its family with no
-- other family in between.
SELECT s.name FROM before, metric_samples(scrape) s
WHERE NOT EXISTS (SELECT FROM families f WHERE f.kind = 'TYPE' AND
	(f.family = s.name OR (f.rest = 'histogram' AND s.name IN (f.family || '_bucket', f.family || '_sum', f.family || '_count'))));
WITH typed AS (
	SELECT t.n, m[1] AS family FROM before, metric_lines(scrape) t, regexp_match(t.line, '^# TYPE (\S+) ') AS m
), owner AS (
	SELECT s.n, s.name, (SELECT family FROM typed WHERE typed.n < s.n ORDER BY typed.n DESC LIMIT 1) AS family
	FROM before, metric_samples(scrape) s
)
SELECT n, name, family FROM owner WHERE name <> family AND name !~ ('^' || family || '_(bucket|sum|count)$');
-- The metrics the system engram replaces named, with their types.
SELECT family, rest AS type FROM families WHERE kind = 'TYPE' AND family LIKE 'engram_streaming_%' ORDER BY family;
-- Histograms: buckets cumulative in le order, +Inf equal to _count.
WITH buckets AS (
	SELECT s.name, s.n, s.value, (regexp_match(s.labels, 'le="([^"]+)"'))[1] AS le
	FROM before, metric_samples(scrape) s WHERE s.name LIKE '%\_bucket'
)
SELECT name, count(*) AS buckets,
	   bool_and(le = '+Inf' OR le::float8 > 0) AS bounds_valid,
	   bool_and(value >= coalesce(previous, 0)) AS cumulative,
	   max(value) FILTER (WHERE le = '+Inf') = (SELECT metric_value(scrape, replace(name, '_bucket', '_count')) FROM before)
		   AS inf_is_count
FROM (SELECT *, lag(value) OVER (PARTITION BY name ORDER BY n) AS previous FROM buckets) b
GROUP BY name ORDER BY name;
-- Per-worker families carry a worker label for each of engram.workers' rows.
SELECT name, count(*) = (SELECT count(*) FROM engram.workers) AS one_per_worker
FROM before, metric_samples(scrape) WHERE labels LIKE '{worker="%"}' GROUP BY name ORDER BY name;

-- Observing rows and recalling moves the counters.
SELECT count(engram.observe('metrics_space', ARRAY[i, 1, 2]::real[])) AS observed FROM generate_series(1, 3) AS i;
SELECT engram.wait_stored() AS stored, engram.wait_linked('metrics_space') AS linked;
SELECT count(*) AS recalled FROM engram.recall('metrics_space', '{1,1,2}', 2);
CREATE TEMP TABLE after AS SELECT engram.metrics() AS scrape;
SELECT metric_value(a.scrape, m) - metric_value(b.scrape, m) AS moved, m AS metric
FROM before b, after a, unnest(ARRAY['engram_streaming_observations_total',
									 'engram_streaming_observation_latency_seconds_count',
									 'engram_observation_stored_latency_seconds_count',
									 'engram_streaming_recall_latency_seconds_count']) AS m
ORDER BY m;
-- The linked latency counts what was linked (wait_linked returns once the
-- rows are linked and timed).
SELECT metric_value(a.scrape, 'engram_streaming_recall_latency_seconds_sum') >
	   metric_value(b.scrape, 'engram_streaming_recall_latency_seconds_sum') AS recall_time_added,
	   (SELECT sum(value) FROM metric_samples(a.scrape) WHERE name = 'engram_worker_stored_total') -
	   (SELECT sum(value) FROM metric_samples(b.scrape) WHERE name = 'engram_worker_stored_total') AS workers_stored,
	   metric_value(a.scrape, 'engram_space_linked', '{space="metrics_space"}') -
	   metric_value(b.scrape, 'engram_space_linked', '{space="metrics_space"}') AS space_linked
FROM before b, after a;

-- engram.track_latency = off: commits and recalls are not timed, and still count.
SET engram.track_latency = off;
SELECT count(engram.observe('metrics_space', ARRAY[i, 2, 2]::real[])) AS observed FROM generate_series(1, 2) AS i;
SELECT engram.wait_stored() AS stored, engram.wait_linked('metrics_space') AS linked;
SELECT count(*) AS recalled FROM engram.recall('metrics_space', '{1,1,2}', 2);
RESET engram.track_latency;
CREATE TEMP TABLE untimed AS SELECT engram.metrics() AS scrape;
SELECT metric_value(u.scrape, m) - metric_value(a.scrape, m) AS moved, m AS metric
FROM after a, untimed u, unnest(ARRAY['engram_streaming_observations_total',
									  'engram_streaming_observation_latency_seconds_count',
									  'engram_observation_stored_latency_seconds_count',
									  'engram_streaming_recall_latency_seconds_count']) AS m
ORDER BY m;
-- Every space's gauges say what engram.spaces says (those of the earlier
-- tests' spaces too).
SELECT bool_and(metric_value(a.scrape, 'engram_space_observations', l) = s.observations) AS observations,
	   bool_and(metric_value(a.scrape, 'engram_space_linked', l) = s.linked) AS linked,
	   bool_and(metric_value(a.scrape, 'engram_space_pending', l) = s.pending) AS pending,
	   bool_and(metric_value(a.scrape, 'engram_space_memory_bytes', l) = s.memory_bytes) AS memory_bytes,
	   bool_and(metric_value(a.scrape, 'engram_space_unpersisted_observations', l)
				BETWEEN 0 AND s.observations + s.forgotten) AS unpersisted,
	   bool_or(s.name = 'metrics_space' AND metric_value(a.scrape, 'engram_space_observations', l) = 6)
		   AS metrics_space_has_6
FROM untimed a, engram.spaces s, format('{space="%s"}', s.name) AS l;
SELECT count(*) = (SELECT count(*) FROM engram.spaces) AS one_sample_per_space
FROM untimed, metric_samples(scrape) WHERE name = 'engram_space_observations';
SELECT engram.drop_space('metrics_space');
DROP VIEW families;
DROP FUNCTION metric_value(text, text, text), metric_samples(text), metric_lines(text);
