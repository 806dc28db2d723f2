-- engram 0.5.0 -> 0.6.0: spaces of up to 4,096 dimensions for storage f16
-- and sq8 (f32 stays at 2,000; see "Creating a space" in docs/usage.md).
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
