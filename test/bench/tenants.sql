-- The rows of the many-spaces benchmark (bench_tenants in
-- test/scripts/engram.sh), made up the same way in engram's cluster and in
-- pgvector's so that both answer the same cue over the same vectors: row id of
-- tenant t, dim components in [-0.5, 0.5] from a fixed hash.
CREATE SCHEMA IF NOT EXISTS engram_bench;

CREATE FUNCTION engram_bench.vec(tenant int, id int, dim int) RETURNS real[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
	SELECT array_agg(((hashint8((tenant::bigint * 1000000 + id) * 4096 + d) & 65535) / 65535.0 - 0.5)::real ORDER BY d)
	FROM generate_series(1, dim) AS d
$$;
