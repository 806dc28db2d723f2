-- engram 0.5.0 -> 0.6.0: spaces of up to 4,096 dimensions for storage f16
-- and sq8 (f32 stays at 2,000; see "Creating a space" in docs/usage.md), and
-- engram.memory_usage() for sizing many spaces.
\echo Use "ALTER EXTENSION engram UPDATE TO '0.6.0'" to load this file. \quit

SELECT engram._require_preload();

-- A row of more than about 2,000 dimensions is larger than a heap page, so
-- its embedding must be able to leave the row. EXTERNAL moves it to TOAST,
-- uncompressed (float components do not compress, and the workers and
-- recall's re-ranking read it back without paying for pglz); with the table's
-- toast_tuple_target of 8160 only rows that would not fit a page leave it,
-- so smaller rows stay one heap tuple as before. Rows written before keep
-- their inline embeddings.
ALTER TABLE engram.observations ALTER COLUMN embedding SET STORAGE EXTERNAL;

-- engram.memory_usage(): what the spaces' indexes hold of engram.memory_limit
-- (and in how many free blocks the rest lies), and how many of the space
-- directory's slots are taken, for sizing and for seeing that dropped spaces
-- gave their memory back. Like engram.spaces, for pg_monitor.
CREATE FUNCTION engram.memory_usage(OUT used_bytes bigint, OUT capacity_bytes bigint, OUT free_blocks bigint,
									OUT spaces int, OUT max_spaces int, OUT directory_bytes bigint)
RETURNS record AS 'MODULE_PATHNAME', 'engram_memory_usage' LANGUAGE C;
REVOKE ALL ON FUNCTION engram.memory_usage() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION engram.memory_usage() TO pg_monitor;
