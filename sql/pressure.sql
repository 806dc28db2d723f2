-- Pressure and the workers view on an idle pipeline (everything stored and linked).
SELECT engram.wait_stored();
SELECT bool_and(engram.wait_linked(name)) AS all_linked FROM engram.spaces;
SELECT level, fill < 0.5 AS low_fill, pending, retry_after_ms, suggested_batch FROM engram.pressure();
SELECT worker_id, pid IS NOT NULL AS running, state IN ('idle', 'draining') AS healthy,
	   queue_depth, observed_total >= 0 AS counts, linked_total >= 0 AS linked_counts,
	   busy_ratio BETWEEN 0 AND 1 AS ratio
FROM engram.workers ORDER BY worker_id;
SELECT sum(observed_total) >= (SELECT count(*) FROM engram.observations) AS workers_stored_every_row,
	   sum(linked_total) >= (SELECT sum(linked) FROM engram.spaces) AS workers_linked_every_row
FROM engram.workers;
-- Each space's own pressure: what a commit into it meets (idle: normal, nothing pending).
SELECT s.name, p.level, p.fill < 0.5 AS low_fill, p.pending, p.retry_after_ms, p.suggested_batch
FROM engram.spaces s, engram.pressure(s.name) p ORDER BY s.name;
SELECT try($$SELECT engram.pressure('no_such_space')$$);
SELECT try($$SELECT engram.pressure(NULL)$$);
SELECT try($$SELECT engram.pressure('')$$);
SELECT try($$SELECT engram.pressure('alpha', 'beta')$$);
