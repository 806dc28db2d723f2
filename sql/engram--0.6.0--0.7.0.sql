-- engram 0.6.0 -> 0.7.0: create_space's ef_construction defaults to 100
-- instead of 200. On one-thread builds of glove100, sift5k, fashion-mnist and
-- 100,000 clustered 768-d vectors, 100 keeps recall@10 at engram.ef_search's
-- default (128) within 0.001 of 200 for about 0.6 of the linking work
-- (docs/benchmarks.md, "What ef_construction costs and buys";
-- test/bench/construction_bench.cpp). Spaces that exist keep theirs.
-- Also engram.metrics(), the Prometheus exposition (below).
\echo Use "ALTER EXTENSION engram UPDATE TO '0.7.0'" to load this file. \quit

SELECT engram._require_preload();

-- CREATE OR REPLACE keeps the function's owner, its settings and the
-- EXECUTE granted on it role by role; only the default changes.
CREATE OR REPLACE FUNCTION engram.create_space(name text, dim int DEFAULT 768, metric text DEFAULT 'cosine',
											   m int DEFAULT 16, ef_construction int DEFAULT 100,
											   storage text DEFAULT 'f32')
RETURNS int AS 'MODULE_PATHNAME', 'engram_create_space' LANGUAGE C VOLATILE;

-- engram.metrics(): engram's counters, gauges and latency histograms in the
-- Prometheus text exposition format, for one SQL scrape (docs/operations.md,
-- "Metrics"). Like engram.spaces and engram.memory_usage(), for pg_monitor.
CREATE FUNCTION engram.metrics() RETURNS text AS 'MODULE_PATHNAME', 'engram_metrics' LANGUAGE C;
REVOKE ALL ON FUNCTION engram.metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION engram.metrics() TO pg_monitor;
