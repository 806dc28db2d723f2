-- engram 0.1.0 -> 0.2.0: the privilege boundary, backups and one identity per
-- installation. A fresh CREATE EXTENSION runs 0.1.0 and then this script, so
-- every install goes through the upgrade path that existing databases take.
\echo Use "ALTER EXTENSION engram UPDATE TO '0.2.0'" to load this file. \quit

----------------------------------------------------------------------------
-- Backups and identity
----------------------------------------------------------------------------
-- engram serves the one database engram.database names: refuse to update an
-- installation anywhere else (its rows would never reach the workers).
SELECT engram._require_preload();

-- pg_dump leaves an extension's tables out of a dump unless they are marked
-- as configuration: these hold every user row (spaces, observations,
-- sessions), and their sequences carry on after the restored ids, so a
-- restore keeps space ids and observation ids and new ones never collide.
-- The indexes are not dumped: the restore's COPY into engram.observations
-- passes the capture trigger, and the workers index the rows as they commit.
SELECT pg_catalog.pg_extension_config_dump('engram.space_catalog', '');
SELECT pg_catalog.pg_extension_config_dump('engram.space_catalog_space_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('engram.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('engram.observations', '');
SELECT pg_catalog.pg_extension_config_dump('engram.observations_id_seq', '');
