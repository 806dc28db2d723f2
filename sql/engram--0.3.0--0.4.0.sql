-- engram 0.3.0 -> 0.4.0: forgetting, filters and scoring. Observations can be
-- deleted and their content, confidence and metadata updated; recall filters
-- on metadata and time and can weigh recency and confidence (docs/usage.md).
\echo Use "ALTER EXTENSION engram UPDATE TO '0.4.0'" to load this file. \quit

SELECT engram._require_preload();
