-- Wide spaces: f16 and sq8 spaces take up to 4,096 dimensions. Such a row
-- is larger than a heap page, so its embedding is kept in TOAST,
-- uncompressed; it is stored, recalled and dropped like any other. (Last in
-- the schedule, so that its space and observation ids move no other file's.)
\set SHOW_CONTEXT never
SELECT engram.create_space('wide_4096', 4096, 'l2', storage => 'f16') > 0 AS wide_created;
SELECT engram.observe('wide_4096', array_fill(0.5::real, ARRAY[4096])) AS wide_row \gset
SELECT engram.observe('wide_4096', array_fill(-0.5::real, ARRAY[4096])) > 0 AS observed;
SELECT engram.wait_stored();
SELECT id = :wide_row AS own_row_first, distance FROM engram.recall('wide_4096', array_fill(0.5::real, ARRAY[4096]), 1);
-- the whole vector (16,384 bytes and the array header), uncompressed though
-- it is all one value
SELECT pg_column_size(embedding) AS stored_bytes, array_length(embedding, 1) AS dim
FROM engram.observations WHERE id = :wide_row;
SELECT try($$SELECT engram.observe('wide_4096', array_fill(0.5::real, ARRAY[4095]))$$);
SELECT try($$SELECT engram.create_space('wide_f32', 4096, 'l2')$$);
SELECT engram.drop_space('wide_4096');
SELECT engram.wait_stored();
SELECT count(*) AS wide_spaces FROM engram.spaces WHERE name IN ('wide_4096', 'wide_f32');
