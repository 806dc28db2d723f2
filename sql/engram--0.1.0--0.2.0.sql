-- engram 0.1.0 -> 0.2.0: the privilege boundary, backups and one identity per
-- installation. A fresh CREATE EXTENSION runs 0.1.0 and then this script, so
-- every install goes through the upgrade path that existing databases take.
\echo Use "ALTER EXTENSION engram UPDATE TO '0.2.0'" to load this file. \quit
