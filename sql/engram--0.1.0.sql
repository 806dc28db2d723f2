-- engram 0.1.0: spaces, the table of truth, transactional ingest and the
-- administration surface. Everything lives in schema engram.
\echo Use "CREATE EXTENSION engram" to load this file. \quit

-- Refuse to install unless the library was preloaded: the shared memory,
-- the ring and the worker pool exist only then.
CREATE FUNCTION engram._require_preload() RETURNS void
	AS 'MODULE_PATHNAME', 'engram_require_preload' LANGUAGE C STRICT;
SELECT engram._require_preload();

----------------------------------------------------------------------------
-- Spaces
----------------------------------------------------------------------------
CREATE TABLE engram.space_catalog (
	space_id        serial PRIMARY KEY,
	name            text NOT NULL UNIQUE,
	dim             int NOT NULL,
	metric          text NOT NULL,
	m               int NOT NULL,
	ef_construction int NOT NULL,
	owner           regrole NOT NULL DEFAULT current_user::regrole,
	created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION engram.create_space(name text, dim int DEFAULT 768, metric text DEFAULT 'cosine',
									m int DEFAULT 16, ef_construction int DEFAULT 200)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	new_id int;
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'space name must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name !~ '^[a-z0-9_-]{3,64}$' THEN
		RAISE EXCEPTION 'invalid space name "%"', name
			USING ERRCODE = 'invalid_name',
				  DETAIL = 'A space name has 3 to 64 characters, each a lower-case letter, a digit, "_" or "-".',
				  HINT = 'Choose a name such as "agent_memory".';
	END IF;
	IF dim IS NULL OR dim < 1 OR dim > 2000 THEN
		RAISE EXCEPTION 'dimension % is out of range', coalesce(dim::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A space holds vectors of 1 to 2000 dimensions.';
	END IF;
	IF metric IS NULL OR metric NOT IN ('l2', 'cosine', 'ip') THEN
		RAISE EXCEPTION 'unknown metric "%"', metric
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use "l2", "cosine" or "ip".';
	END IF;
	IF m IS NULL OR m < 2 OR m > 100 THEN
		RAISE EXCEPTION 'm % is out of range', coalesce(m::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The number of neighbours per node, m, must be between 2 and 100.';
	END IF;
	IF ef_construction IS NULL OR ef_construction < m OR ef_construction > 1000 THEN
		RAISE EXCEPTION 'ef_construction % is out of range', coalesce(ef_construction::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('ef_construction must be between m (%s) and 1000.', m);
	END IF;
	BEGIN
		INSERT INTO engram.space_catalog (name, dim, metric, m, ef_construction)
		VALUES (create_space.name, create_space.dim, create_space.metric, create_space.m,
				create_space.ef_construction)
		RETURNING space_id INTO new_id;
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'space "%" already exists', name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Use another name, or engram.drop_space() first.';
	END;
	RETURN new_id;
END
$$;

-- Resolves a space name, with the error every function gives for unknown ones.
CREATE FUNCTION engram._space_id(space text) RETURNS int
LANGUAGE plpgsql STABLE AS $$
DECLARE
	found_id int;
BEGIN
	IF space IS NULL THEN
		RAISE EXCEPTION 'space name must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT c.space_id INTO found_id FROM engram.space_catalog c WHERE c.name = space;
	IF found_id IS NULL THEN
		RAISE EXCEPTION 'space "%" does not exist', space
			USING ERRCODE = 'undefined_object',
				  HINT = 'Create it with engram.create_space(), or list spaces in engram.spaces.';
	END IF;
	RETURN found_id;
END
$$;

----------------------------------------------------------------------------
-- The table of truth
----------------------------------------------------------------------------
CREATE FUNCTION engram._check_embedding(space_id int, embedding real[]) RETURNS boolean
	AS 'MODULE_PATHNAME', 'engram_check_embedding' LANGUAGE C;

CREATE TABLE engram.sessions (
	session_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	space_id   int NOT NULL REFERENCES engram.space_catalog ON DELETE CASCADE,
	last_seq   bigint NOT NULL DEFAULT 0,
	opened_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE engram.observations (
	id          bigserial PRIMARY KEY,
	space_id    int NOT NULL REFERENCES engram.space_catalog,
	embedding   real[] CHECK (engram._check_embedding(space_id, embedding)),
	content     text,
	confidence  real NOT NULL DEFAULT 0.7
				CONSTRAINT confidence_in_unit_interval CHECK (confidence >= 0 AND confidence <= 1),
	metadata    jsonb,
	observed_at timestamptz NOT NULL DEFAULT now(),
	session_id  uuid,
	seq         bigint,
	CHECK ((session_id IS NULL) = (seq IS NULL))
) WITH (toast_tuple_target = 8160);
-- Keep vectors inline and uncompressed: a 768-d row stays one heap tuple and
-- no insert pays for pglz or a TOAST lookup. Max 2000 dimensions fit a page.
ALTER TABLE engram.observations ALTER COLUMN embedding SET STORAGE PLAIN;
CREATE UNIQUE INDEX observations_session_seq ON engram.observations (session_id, seq)
	WHERE session_id IS NOT NULL;
CREATE INDEX observations_space ON engram.observations (space_id, id);

-- Every committed row reaches the ring: the capture trigger queues it for
-- publication at commit. ALWAYS, so that logical replication apply feeds it too.
CREATE FUNCTION engram._capture() RETURNS trigger
	AS 'MODULE_PATHNAME', 'engram_capture' LANGUAGE C;
CREATE TRIGGER capture AFTER INSERT ON engram.observations
	FOR EACH ROW EXECUTE FUNCTION engram._capture();
ALTER TABLE engram.observations ENABLE ALWAYS TRIGGER capture;

-- Observations are immutable: the indexes derived from them only grow.
CREATE FUNCTION engram._guard_immutable() RETURNS trigger
	AS 'MODULE_PATHNAME', 'engram_guard_immutable' LANGUAGE C;
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON engram.observations
	FOR EACH ROW EXECUTE FUNCTION engram._guard_immutable();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON engram.observations
	FOR EACH STATEMENT EXECUTE FUNCTION engram._guard_immutable();

CREATE FUNCTION engram._forget_space(space_id int) RETURNS void
	AS 'MODULE_PATHNAME', 'engram_forget_space' LANGUAGE C STRICT;

CREATE FUNCTION engram.drop_space(name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	sid int := engram._space_id(name);
BEGIN
	-- Lock the space row first so concurrent drops of one space serialize.
	PERFORM 1 FROM engram.space_catalog c WHERE c.space_id = sid FOR UPDATE;
	PERFORM engram._forget_space(sid);
	DELETE FROM engram.observations o WHERE o.space_id = sid;
	DELETE FROM engram.space_catalog c WHERE c.space_id = sid;
END
$$;

----------------------------------------------------------------------------
-- Ingest
----------------------------------------------------------------------------
-- Rows of a batch: embeddings is n x dim, contents and confidences have n
-- elements or are NULL.
CREATE FUNCTION engram._batch_rows(embeddings real[], contents text[], confidences real[],
								   OUT ordinality bigint, OUT embedding real[], OUT content text,
								   OUT confidence real)
RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'engram_batch_rows' LANGUAGE C;

CREATE FUNCTION engram.open_session(space text) RETURNS uuid
LANGUAGE sql AS $$
	INSERT INTO engram.sessions (space_id) VALUES (engram._space_id(space)) RETURNING session_id
$$;

CREATE FUNCTION engram.close_session(session uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM engram.sessions s WHERE s.session_id = session;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'session % does not exist', session
			USING ERRCODE = 'undefined_object';
	END IF;
END
$$;

-- Claims sequence numbers [first_seq, first_seq + n) of a session: returns
-- how many of them were already accepted earlier (to be acknowledged, not
-- stored again). Locks the session row so that its position moves with this
-- transaction only.
CREATE FUNCTION engram._claim_seq(session uuid, sid int, first_seq bigint, n bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	s record;
	already bigint;
BEGIN
	SELECT * INTO s FROM engram.sessions x WHERE x.session_id = session FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'session % does not exist', session
			USING ERRCODE = 'undefined_object',
				  HINT = 'Open one with engram.open_session().';
	END IF;
	IF s.space_id <> sid THEN
		RAISE EXCEPTION 'session % belongs to another space', session
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF first_seq IS NULL OR first_seq < 1 THEN
		RAISE EXCEPTION 'sequence number must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF first_seq > s.last_seq + 1 THEN
		RAISE EXCEPTION 'sequence gap in session %', session
			USING ERRCODE = '22E01',
				  DETAIL = format('Expected sequence number %s, got %s.', s.last_seq + 1, first_seq),
				  HINT = 'Resend from the expected sequence number.';
	END IF;
	already := least(n, s.last_seq - first_seq + 1);
	IF first_seq + n - 1 > s.last_seq THEN
		UPDATE engram.sessions x SET last_seq = first_seq + n - 1 WHERE x.session_id = session;
	END IF;
	RETURN already;
END
$$;

CREATE FUNCTION engram.observe(space text, embedding real[], content text DEFAULT NULL,
							   confidence real DEFAULT 0.7, metadata jsonb DEFAULT NULL,
							   session uuid DEFAULT NULL, seq bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	sid int := engram._space_id(space);
	new_id bigint;
BEGIN
	IF (session IS NULL) <> (seq IS NULL) THEN
		RAISE EXCEPTION 'session and seq must be given together'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF session IS NOT NULL AND engram._claim_seq(session, sid, seq, 1) = 1 THEN
		SELECT o.id INTO new_id FROM engram.observations o
		WHERE o.session_id = session AND o.seq = observe.seq;
		RETURN new_id;
	END IF;
	INSERT INTO engram.observations (space_id, embedding, content, confidence, metadata, session_id, seq)
	VALUES (sid, embedding, content, coalesce(confidence, 0.7), metadata, session, seq)
	RETURNING id INTO new_id;
	RETURN new_id;
END
$$;

CREATE FUNCTION engram.observe_batch(space text, embeddings real[], contents text[] DEFAULT NULL,
									 confidences real[] DEFAULT NULL, session uuid DEFAULT NULL,
									 seq bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	sid int := engram._space_id(space);
	n bigint;
	skip bigint := 0;
BEGIN
	IF (session IS NULL) <> (seq IS NULL) THEN
		RAISE EXCEPTION 'session and seq must be given together'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF embeddings IS NULL OR array_ndims(embeddings) IS DISTINCT FROM 2 THEN
		RAISE EXCEPTION 'embeddings must be a two-dimensional array'
			USING ERRCODE = 'array_subscript_error',
				  DETAIL = format('Got %s dimensions.', coalesce(array_ndims(embeddings)::text, 'no')),
				  HINT = 'Pass one row per observation, e.g. ARRAY[[1,2,3],[4,5,6]]::real[].';
	END IF;
	n := array_length(embeddings, 1);
	IF session IS NOT NULL THEN
		skip := engram._claim_seq(session, sid, seq, n);
	END IF;
	INSERT INTO engram.observations (space_id, embedding, content, confidence, session_id, seq)
	SELECT sid, r.embedding, r.content, coalesce(r.confidence, 0.7), session, seq + r.ordinality - 1
	FROM engram._batch_rows(embeddings, contents, confidences) r
	WHERE r.ordinality > skip;
	RETURN n;
END
$$;

----------------------------------------------------------------------------
-- Administration
----------------------------------------------------------------------------
CREATE FUNCTION engram._space_state(OUT space_id int, OUT stored bigint, OUT linked bigint,
									OUT memory_bytes bigint, OUT generation bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'engram_space_state' LANGUAGE C;

CREATE FUNCTION engram._published_generation() RETURNS bigint
	AS 'MODULE_PATHNAME', 'engram_published_generation' LANGUAGE C;

CREATE VIEW engram.spaces AS
SELECT c.space_id, c.name, c.dim, c.metric, c.m, c.ef_construction,
	   coalesce(s.stored, 0) AS observations,
	   coalesce(s.linked, 0) AS linked,
	   coalesce(s.stored, 0) - coalesce(s.linked, 0) AS pending,
	   coalesce(s.generation, 0) AS generation,
	   coalesce(s.memory_bytes, 0) AS memory_bytes,
	   c.owner
FROM engram.space_catalog c
LEFT JOIN engram._space_state() s ON s.space_id = c.space_id;

CREATE FUNCTION engram.pressure(OUT level text, OUT fill real, OUT pending bigint,
								OUT retry_after_ms int, OUT suggested_batch int)
RETURNS record AS 'MODULE_PATHNAME', 'engram_pressure' LANGUAGE C;

CREATE FUNCTION engram._worker_state(OUT worker_id int, OUT pid int, OUT state text, OUT spaces int,
									 OUT queue_depth bigint, OUT observed_total bigint,
									 OUT linked_total bigint, OUT busy_ratio real)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'engram_worker_state' LANGUAGE C;
CREATE VIEW engram.workers AS SELECT * FROM engram._worker_state();

-- Generations are cluster-wide: one counter orders every commit into engram.
-- The generation a recall would use now: the latest published one, after
-- waiting (briefly) for this session's own last commit to be published.
CREATE FUNCTION engram._current_generation() RETURNS bigint
	AS 'MODULE_PATHNAME', 'engram_current_generation' LANGUAGE C;
CREATE FUNCTION engram.current_generation(space text) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM engram._space_id(space);
	RETURN engram._current_generation();
END
$$;

-- True once every observation committed before the call is in its space's
-- store and every committed drop_space has freed its memory (waits up to
-- timeout_ms).
CREATE FUNCTION engram.wait_stored(timeout_ms int DEFAULT 10000) RETURNS boolean
	AS 'MODULE_PATHNAME', 'engram_wait_stored' LANGUAGE C STRICT;

-- The observation ids a space's store holds, in store order (diagnostics).
CREATE FUNCTION engram._stored_ids(space_id int) RETURNS SETOF bigint
	AS 'MODULE_PATHNAME', 'engram_stored_ids' LANGUAGE C STRICT;
CREATE FUNCTION engram.stored_ids(space text) RETURNS SETOF bigint
LANGUAGE sql AS $$ SELECT engram._stored_ids(engram._space_id(space)) $$;

----------------------------------------------------------------------------
-- Recall
----------------------------------------------------------------------------
-- Names and shapes of spaces are not secret (like pg_class); the rows are:
-- recall checks SELECT on engram.observations itself.
GRANT SELECT ON engram.space_catalog TO PUBLIC;

CREATE FUNCTION engram.recall(space text, cue real[], k int DEFAULT 10, as_of bigint DEFAULT NULL,
							  min_confidence real DEFAULT 0)
RETURNS TABLE(id bigint, distance real, score real, confidence real, generation bigint)
AS 'MODULE_PATHNAME', 'engram_recall' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 10;

CREATE FUNCTION engram._wait_linked(space_id int, generation bigint, timeout_ms int) RETURNS boolean
	AS 'MODULE_PATHNAME', 'engram_wait_linked' LANGUAGE C;

-- True once every observation of the space committed at or before the
-- generation (NULL: every commit so far) is linked into its graph.
CREATE FUNCTION engram.wait_linked(space text, generation bigint DEFAULT NULL, timeout_ms int DEFAULT 10000)
RETURNS boolean LANGUAGE sql AS $$ SELECT engram._wait_linked(engram._space_id(space), generation, timeout_ms) $$;

CREATE FUNCTION engram._rebuild(space_id int) RETURNS void
	AS 'MODULE_PATHNAME', 'engram_rebuild' LANGUAGE C STRICT;

-- Rebuilds the space's index from the table; recalls keep using the old
-- index until the new one is linked. Only the space's owner (or a member of
-- the owning role) may rebuild it.
CREATE FUNCTION engram.rebuild(space text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	sid int := engram._space_id(space);
	space_owner regrole;
BEGIN
	SELECT c.owner INTO space_owner FROM engram.space_catalog c WHERE c.space_id = sid;
	IF NOT pg_has_role(current_user, space_owner, 'MEMBER') THEN
		RAISE EXCEPTION 'must be owner of space "%"', space
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Space "%s" belongs to role %s.', space, space_owner),
				  HINT = 'Rebuild it as its owner, or as a member of the owning role.';
	END IF;
	PERFORM engram._rebuild(sid);
END
$$;
