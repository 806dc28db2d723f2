-- engram 0.7.0 -> 0.8.0: operations. What each part adds is described where
-- it is defined below.
\echo Use "ALTER EXTENSION engram UPDATE TO '0.8.0'" to load this file. \quit

SELECT engram._require_preload();
