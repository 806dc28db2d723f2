-- pgvector's side of the many-spaces benchmark (bench_tenants in
-- test/scripts/engram.sh): one table for every tenant and one partial HNSW
-- index per tenant, the layout whose planner opens and locks every index of
-- the table on each query. add_tenants adds tenants one transaction each
-- until the last, a deadline or the first failure, keeping what each cost and
-- the failure's exact error. Needs tenants.sql first; psql variable dim.
CREATE TABLE engram_bench.items (
	tenant    int NOT NULL,
	id        bigint NOT NULL,
	embedding public.vector(:dim) NOT NULL
);

CREATE TABLE engram_bench.tenant_added (
	tenant     int PRIMARY KEY,
	insert_ms  double precision NOT NULL,
	index_ms   double precision NOT NULL
);

CREATE TABLE engram_bench.tenant_stop (
	tenant   int NOT NULL,
	sqlstate text,
	message  text NOT NULL,
	detail   text,
	hint     text,
	context  text
);

-- No SET clause: a procedure with one cannot commit.
CREATE PROCEDURE engram_bench.add_tenants(first int, last int, rows int, dim int, deadline timestamptz)
LANGUAGE plpgsql
AS $$
DECLARE
	began timestamptz;
	inserted timestamptz;
	state text;
	message text;
	detail text;
	hint text;
	context text;
BEGIN
	FOR t IN first..last LOOP
		IF pg_catalog.clock_timestamp() > deadline THEN
			INSERT INTO engram_bench.tenant_stop (tenant, message) VALUES (t, 'time limit of the benchmark');
			COMMIT;
			RETURN;
		END IF;
		BEGIN
			began := pg_catalog.clock_timestamp();
			INSERT INTO engram_bench.items (tenant, id, embedding)
			SELECT t, r, engram_bench.vec(t, r, dim)::public.vector FROM pg_catalog.generate_series(1, rows) AS r;
			inserted := pg_catalog.clock_timestamp();
			EXECUTE pg_catalog.format('CREATE INDEX items_tenant_%s ON engram_bench.items '
									  'USING hnsw (embedding public.vector_l2_ops) WHERE tenant = %s', t, t);
			INSERT INTO engram_bench.tenant_added
			VALUES (t, extract(epoch FROM inserted - began) * 1000,
					extract(epoch FROM pg_catalog.clock_timestamp() - inserted) * 1000);
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
									hint = PG_EXCEPTION_HINT, context = PG_EXCEPTION_CONTEXT;
			INSERT INTO engram_bench.tenant_stop VALUES (t, state, message, detail, hint, context);
			COMMIT;
			RETURN;
		END;
		COMMIT;
	END LOOP;
END
$$;
