#!/usr/bin/env bash
# The two set-up commands of the README, for a fresh Debian 12 machine, as root:
#
#   bash test/scripts/engram.sh demo   install what is missing, build, install, start a
#                                      throwaway cluster with engram preloaded, stream
#                                      observations into it from concurrent clients while
#                                      another client recalls, and print the figures
#   bash test/scripts/engram.sh test   the same set-up, then every test suite: the code's
#                                      format (.clang-format), core unit tests (plain,
#                                      AddressSanitizer, ThreadSanitizer), pg_regress and
#                                      the TAP tests; everything built with warnings as errors
#   bash test/scripts/engram.sh bench [ring|ingest|metrics|hnsw|indexing|recall|startup|filter|tenants|capacity|seed]...
#                                      the same set-up, then the benchmarks recorded in
#                                      docs/benchmarks.md (all of them without arguments)
#   bash test/scripts/engram.sh format rewrite every tracked C++ file in the style of
#                                      .clang-format (the format suite of `test` checks it)
#
# For developers: ENGRAM_SUITES (e.g. "regress tap") runs only the named
# suites of `test` (format, core, asan, tsan, regress, tap), ENGRAM_TAP names the TAP
# files to run (e.g. "test/t/010_hostile.pl"), ENGRAM_WORK moves the work
# folder, and ENGRAM_PGROOT installs into a private copy of PostgreSQL under
# that folder, so that several checkouts can build and test at once.
#
# PostgreSQL refuses to run as root, so servers and the PostgreSQL test suites
# run as the unprivileged user "engram" in a copy of the tree it owns.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
RUN_USER=engram
WORK=${ENGRAM_WORK:-/tmp/engram-work}
PGROOT=${ENGRAM_PGROOT:-}
SYNTH=/tmp/engram-data # synthetic data sets (deterministic, so kept between runs)
export ENGRAM_DATA=${ENGRAM_DATA:-$(cd "$ROOT/.." && pwd)/shared/data}

say() { printf '\n== %s\n' "$*"; }

install_packages() {
	install_missing postgresql-15 postgresql-server-dev-15 libpq-dev libtbb-dev libgtest-dev libbenchmark-dev \
		libhnswlib-dev libipc-run-perl cmake g++ make gnuplot-nox clang-format prometheus \
		python3-psycopg nodejs
	# NodeSource's nodejs carries npm; Debian's own leaves it to the npm package.
	command -v npm >/dev/null 2>&1 || install_missing npm
	id -u "$RUN_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$RUN_USER"
	use_private_postgres
}

install_missing() {
	local missing=()
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	if ((${#missing[@]})); then
		say "installing ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
}

# With ENGRAM_PGROOT, a relocated copy of the installed PostgreSQL (its binaries
# find their libraries and share files relative to themselves), so that
# `make install` there leaves the system's engram alone.
use_private_postgres() {
	[ -n "$PGROOT" ] || return 0
	if [ ! -x "$PGROOT/usr/lib/postgresql/15/bin/postgres" ]; then
		mkdir -p "$PGROOT/usr/lib/postgresql" "$PGROOT/usr/share/postgresql" "$PGROOT/usr/include"
		cp -a /usr/lib/postgresql/15 "$PGROOT/usr/lib/postgresql/"
		cp -a /usr/share/postgresql/15 "$PGROOT/usr/share/postgresql/"
		cp -a /usr/include/postgresql "$PGROOT/usr/include/"
		chmod -R a+rX "$PGROOT"
	fi
	PGBIN=$PGROOT/usr/lib/postgresql/15/bin
}

# `test` builds everything with warnings as errors; demo and bench do not.
WERROR=OFF

# Builds the core (CMake) in build/<name> with an optional sanitizer.
build_core() {
	local name=$1 sanitize=${2:-}
	cmake -S "$ROOT" -B "$ROOT/build/$name" -DENGRAM_SANITIZE="$sanitize" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DENGRAM_WERROR="$WERROR" >/dev/null
	cmake --build "$ROOT/build/$name" -j 2 >/dev/null
}

# Copies the tree to $WORK (owned by the run user), builds and installs the extension.
build_extension() {
	say "building and installing the extension"
	rm -rf "$WORK"
	mkdir -p "$WORK"
	tar -C "$ROOT" --exclude=./build --exclude=./.git -cf - . | tar -C "$WORK" -xf -
	make -C "$WORK" -j 2 PG_CONFIG="$PGBIN/pg_config" ENGRAM_WERROR="$([ "$WERROR" = ON ] && echo 1 || echo 0)" >/dev/null
	make -C "$WORK" install PG_CONFIG="$PGBIN/pg_config" >/dev/null
	chown -R "$RUN_USER" "$WORK"
}

as_user() { runuser -u "$RUN_USER" -- env ENGRAM_DATA="$ENGRAM_DATA" PATH="$PGBIN:$PATH" "$@"; }

# Starts a throwaway cluster in $WORK/cluster-<name> on loopback with any
# extra settings given as further arguments; stopped on exit.
start_cluster() {
	local name=$1 port=$2
	shift 2
	CLUSTER="$WORK/cluster-$name"
	PORT=$port
	say "starting a throwaway cluster in $CLUSTER (port $PORT, loopback only${*:+; $*})"
	rm -rf "$CLUSTER"
	as_user "$PGBIN/initdb" -D "$CLUSTER" -A trust >/dev/null
	cat >>"$CLUSTER/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$WORK'
shared_preload_libraries = 'engram'
engram.database = 'postgres'
engram.workers = 2
engram.ring_size = '64MB'
engram.memory_limit = '4GB'
max_worker_processes = 16
max_wal_size = '4GB'
CONF
	local setting
	for setting in "$@"; do echo "$setting" >>"$CLUSTER/postgresql.conf"; done
	trap 'stop_cluster' EXIT
	as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -l "$CLUSTER/server.log" -w start >/dev/null
	as_user psql -X -q -h 127.0.0.1 -p "$PORT" -d postgres -c "CREATE EXTENSION engram"
}

stop_cluster() {
	if [ -n "${CLUSTER:-}" ]; then
		as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -m fast stop >/dev/null 2>&1 || true
	fi
}

sql() { as_user psql -X -q -h 127.0.0.1 -p "$PORT" -d postgres "$@"; }

# Writes the synthetic data set NAME (see test/data/engram_synthetic.cpp) unless present.
synthetic() {
	local name=$1
	shift
	if [ ! -f "$SYNTH/$name/${name}_base.fvecs" ]; then
		mkdir -p "$SYNTH"
		"$ROOT/build/release/engram_synthetic" --out "$SYNTH" --name "$name" "$@"
		chmod -R a+rX "$SYNTH"
	fi
}

load() {
	as_user "$ROOT/build/release/engram_load" --conninfo "host=127.0.0.1 port=$PORT dbname=postgres" "$@"
}

run_demo() {
	install_packages
	build_core release
	build_extension
	say "generating 100,000 + 1,000 clustered 128-d vectors with their exact nearest neighbours"
	synthetic demo128 --dim 128 --rows 100000 --queries 1000 --metric l2
	start_cluster demo 54329
	local base="$SYNTH/demo128/demo128"
	sql -c "SELECT engram.create_space('demo', dim => 128, metric => 'l2')"
	say "streaming 100,000 observations from 4 clients (5,000 rows/s) while one client recalls"
	load --mode recall --space demo --fvecs "${base}_query.fvecs" --clients 1 --seconds 18 >"$WORK/demo-recall.out" &
	local recaller=$!
	load --mode observe_batch --space demo --fvecs "${base}_base.fvecs" --rows 100000 --clients 4 --batch 250 \
		--rate 5000 --wait-linked 1
	wait $recaller
	echo "recalls during the stream:"
	cat "$WORK/demo-recall.out"
	say "every query once more, now that everything is linked, scored against the exact neighbours"
	load --mode recall --space demo --fvecs "${base}_query.fvecs" --truth "${base}_groundtruth.ivecs" --clients 2
	say "the space afterwards"
	sql -c "SELECT name, dim, metric, observations, linked, pending, generation, pg_size_pretty(memory_bytes) AS memory
	        FROM engram.spaces" \
		-c "SELECT count(*) AS committed_rows FROM engram.observations" \
		-c "SELECT * FROM engram.pressure()"
}

# Benchmarks behind docs/benchmarks.md; each section runs its peers side by
# side in one run.
bench_ring() {
	say "ring: reserve+fill+commit with 1, 2 and 4 producers against one draining consumer"
	"$ROOT/build/release/ring_bench" --benchmark_min_time=2
}

# Durable ingest through observe_batch and COPY beside a plain COPY of the
# same rows into a table of the same shape without engram.
bench_ingest() {
	start_cluster bench 54330
	local round dim rows
	for round in 1 2; do
		for dim in 128 768; do
			rows=$((dim == 128 ? 200000 : 60000))
			say "ingest round $round, $dim-d, $rows rows, 4 clients, batches of 500"
			load --mode plain_copy --dim "$dim" --rows "$rows" --clients 4 --batch 500
			load --mode copy --space "bench$dim" --dim "$dim" --rows "$rows" --clients 4 --batch 500
			load --mode observe_batch --space "bench$dim" --dim "$dim" --rows "$rows" --clients 4 --batch 500
		done
	done
	stop_cluster
}

# What timing observations costs (engram.track_latency): COPY of the same
# generated rows into a fresh space with the setting on and off, alternating
# which goes first each round, once until every row is linked and once with
# linking paused (the store path alone, where commits are stamped and stored
# rows timed). ENGRAM_METRICS_ROUNDS and ENGRAM_METRICS_ROWS shorten it.
bench_metrics() {
	local rounds=${ENGRAM_METRICS_ROUNDS:-4} rows=${ENGRAM_METRICS_ROWS:-100000} round track order
	local results="$WORK/metrics-results.txt"
	: >"$results"
	# A ring that holds every row unlinked: paused linking must not hold commits back.
	start_cluster metrics 54340 "engram.ring_size = '256MB'" "engram.overload_timeout = '10min'" \
		"engram.max_overload_timeout = '10min'"
	say "metrics: $rounds rounds of COPY, $rows x 128-d rows, 4 clients, batches of 500, engram.track_latency on" \
		"and off ($(load_average))"
	for round in $(seq 1 "$rounds"); do
		order="on off"
		((round % 2)) || order="off on"
		for track in $order; do
			sql -c "ALTER SYSTEM SET engram.track_latency = $track" -c "SELECT pg_reload_conf()" >/dev/null
			say "round $round, track_latency $track: COPY until linked ($(load_average))"
			load --mode copy --space "metrics_linked" --dim 128 --rows "$rows" --clients 4 --batch 500 \
				--wait-linked 1 | tee "$WORK/metrics-run.out"
			grep -o 'indexing_rate=[0-9]*' "$WORK/metrics-run.out" | sed "s/^/linked $track /" >>"$results"
			sql -c "SELECT engram.drop_space('metrics_linked')" >/dev/null
			say "round $round, track_latency $track: COPY until stored, linking paused ($(load_average))"
			sql -c "ALTER SYSTEM SET engram.pause_linking = on" -c "SELECT pg_reload_conf()" >/dev/null
			load --mode copy --space "metrics_stored" --dim 128 --rows "$rows" --clients 4 --batch 500 |
				tee "$WORK/metrics-run.out"
			grep -o 'end_to_end_rate=[0-9]*' "$WORK/metrics-run.out" | sed "s/^/stored $track /" >>"$results"
			sql -c "ALTER SYSTEM RESET engram.pause_linking" -c "SELECT pg_reload_conf()" >/dev/null
			sql -c "SELECT engram.drop_space('metrics_stored')" >/dev/null
		done
	done
	sql -c "ALTER SYSTEM RESET engram.track_latency" -c "SELECT pg_reload_conf()" >/dev/null
	stop_cluster
	say "metrics: rows/s per run; mean, min and max; the mean with track_latency on over the mean with it off"
	awk '{ split($3, kv, "="); k = $1 " " $2; runs[k] = runs[k] " " kv[2]; sum[k] += kv[2]; n[k]++
	       if (!(k in lo) || kv[2] < lo[k]) lo[k] = kv[2]
	       if (!(k in hi) || kv[2] > hi[k]) hi[k] = kv[2] }
	     END {
	       split("linked stored", whats, " ")
	       for (w = 1; w <= 2; w++) {
	         for (t = 0; t < 2; t++) {
	           k = whats[w] " " (t ? "off" : "on")
	           printf "%s, track_latency %s: mean %.0f, min %.0f, max %.0f rows/s; runs:%s\n", whats[w], (t ? "off" : "on"),
	                  sum[k] / n[k], lo[k], hi[k], runs[k]
	         }
	         printf "%s: on/off = %.3f\n", whats[w], (sum[whats[w] " on"] / n[whats[w] " on"]) / (sum[whats[w] " off"] / n[whats[w] " off"])
	       }
	     }' "$results"
}

# The HNSW core against hnswlib on the real data sets.
bench_hnsw() {
	say "HNSW core against hnswlib (sift5k, fashion-mnist, glove100)"
	ENGRAM_BENCH_SWEEP=1 "$ROOT/build/release/hnsw_bench" --benchmark_counters_tabular=true \
		--benchmark_out="$WORK/hnsw_bench.json" --benchmark_out_format=json
}

# Indexing through the worker pool: 100,000 clustered 128-d vectors committed
# as fast as 4 clients can, into one space or spread over 8, with 1 and 2
# workers; the rate counts rows from the first commit until every row is
# linked. Then a restart, which rebuilds every index from the table.
bench_indexing() {
	synthetic index128 --dim 128 --rows 100000 --queries 100 --metric l2
	local workers spaces
	for workers in 1 2; do
		start_cluster "index$workers" 54331 "engram.workers = $workers"
		for spaces in 1 8; do
			say "indexing with $workers worker(s), 100,000 x 128-d into $spaces space(s)"
			load --mode observe_batch --space "idx$spaces" --spaces "$spaces" --metric l2 \
				--fvecs "$SYNTH/index128/index128_base.fvecs" --rows 100000 --clients 4 --batch 500 --wait-linked 1
		done
		say "restart with $workers worker(s): rebuild 200,000 rows in 9 spaces from the table"
		as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -m fast -l "$CLUSTER/server.log" -w restart >/dev/null
		local started=$(date +%s%N)
		sql -At -c "SELECT bool_and(engram.wait_linked(name, NULL, 3600000)) FROM engram.spaces"
		echo "rebuilt and linked after $(( ($(date +%s%N) - started) / 1000000 )) ms"
		stop_cluster
	done
}

# engram.recall through SQL at 100,000 x 768-d (cosine) on an idle server and
# under a sustained stream of observations, then the same queries answered
# by hnswlib and by engram's core in-process on the same data.
bench_recall() {
	synthetic synth768 --dim 768 --rows 100000 --queries 1000 --metric cosine
	synthetic stream768 --dim 768 --rows 100000 --first 100000 --queries 0 --metric cosine
	local base="$SYNTH/synth768/synth768" stream="$SYNTH/stream768/stream768"
	start_cluster recall 54332
	say "loading 100,000 x 768-d through observe_batch and linking them (2 workers)"
	load --mode observe_batch --space r768 --metric cosine --fvecs "${base}_base.fvecs" --rows 100000 \
		--clients 2 --batch 200 --wait-linked 1
	say "SQL recall, idle: one pass for recall@10, then 20 s with 1 and with 2 clients"
	load --mode recall --space r768 --fvecs "${base}_query.fvecs" --truth "${base}_groundtruth.ivecs" --clients 1
	load --mode recall --space r768 --fvecs "${base}_query.fvecs" --clients 1 --seconds 20
	load --mode recall --space r768 --fvecs "${base}_query.fvecs" --clients 2 --seconds 20
	local clients
	for clients in 1 2; do
		say "SQL recall with $clients client(s) for 20 s under a sustained stream of 500 observations/s"
		load --mode observe_batch --space r768 --metric cosine --fvecs "${stream}_base.fvecs" --rows 12500 \
			--clients 2 --batch 50 --rate 500 >"$WORK/stream.out" &
		local streamer=$!
		sleep 1
		load --mode recall --space r768 --fvecs "${base}_query.fvecs" --clients "$clients" --seconds 20
		sql -At -c "SELECT 'during the stream: observations ' || observations || ', pending ' || pending FROM engram.spaces WHERE name = 'r768'"
		wait $streamer
		cat "$WORK/stream.out"
	done
	stop_cluster
	say "the same queries in-process: hnswlib and engram's core, one thread, same data, M 16, ef_construction 200, ef 128"
	ENGRAM_PEER_DATA="$SYNTH" ENGRAM_PEER_SET=synth768 "$ROOT/build/release/recall_peer_bench" \
		--benchmark_counters_tabular=true
}

# Start-up with graph files against relinking from the table (issue 10), and
# what keeping the files costs ingest. Per data set, COPY into one space until
# it is linked in fresh clusters with engram.persist off and on (in the order
# given, so that drift on the shared machine falls on both), counting the graph
# files the writer wrote meanwhile; then, on the last persisted cluster, the
# recall latency before a restart and the start after a clean stop, after
# engram.checkpoint() and an immediate stop, and (engram.persist off) after a
# clean stop that leaves no files. Then pgvector, if its source is at hand,
# after an immediate stop at 200,000 rows.
bench_startup() {
	synthetic start200k --dim 128 --rows 200000 --queries 1000 --metric l2
	synthetic start1m --dim 128 --rows 1000000 --queries 100 --metric l2
	synthetic synth768 --dim 768 --rows 100000 --queries 1000 --metric cosine
	startup_data_set start200k l2 200000 off on on off
	startup_data_set start1m l2 1000000 on off
	startup_data_set synth768 cosine 100000 off on
	startup_pgvector start200k 200000
}

STARTUP_SETTINGS=("engram.memory_limit = '8GB'" "shared_buffers = '1GB'" "engram.overload_timeout = '10min'"
	"engram.max_overload_timeout = '10min'" "log_min_messages = debug1")

milliseconds_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

load_average() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"; }

# startup_data_set SET METRIC ROWS PERSIST...: one COPY-to-linked run per
# PERSIST (on or off), each in a fresh cluster; the restarts follow the last
# run with engram.persist on.
startup_data_set() {
	local set=$1 metric=$2 rows=$3
	shift 3
	local base="$SYNTH/$set/${set}_base.fvecs" queries="$SYNTH/$set/${set}_query.fvecs"
	local runs=("$@") last_on=-1 i
	for i in "${!runs[@]}"; do [ "${runs[$i]}" = on ] && last_on=$i; done
	for i in "${!runs[@]}"; do
		start_cluster startup 54333 "${STARTUP_SETTINGS[@]}" "engram.persist = ${runs[$i]}"
		say "$set: COPY of $rows rows until linked, engram.persist = ${runs[$i]} ($(load_average))"
		local lines
		lines=$(wc -l <"$CLUSTER/server.log")
		load --mode copy --space "$set" --metric "$metric" --fvecs "$base" --rows "$rows" --clients 4 --batch 500 \
			--wait-linked 1
		tail -n +"$((lines + 1))" "$CLUSTER/server.log" | awk '/engram wrote the graph file of space/ {
			n++; bytes += $(NF - 1) } END { printf "graph files written until linked: %d, %.1f MB\n", n, bytes / 1e6 }'
		if [ "$i" -eq "$last_on" ]; then startup_restarts "$set" "$queries" "$rows"; fi
		stop_cluster
	done
}

# The restarts of one persisted cluster holding one linked space.
startup_restarts() {
	local set=$1 queries=$2 rows=$3 began
	sql -c "VACUUM (ANALYZE) engram.observations"
	began=$(date +%s%N)
	sql -c "SELECT engram.checkpoint()"
	echo "engram.checkpoint() after the ingest: $(milliseconds_since "$began") ms"
	sql -c "SELECT name, observations, linked, memory_bytes, file_bytes,
	               round(file_bytes::numeric / nullif(memory_bytes, 0), 3) AS file_per_memory,
	               pg_total_relation_size('engram.observations') AS table_bytes
	        FROM engram.spaces"
	say "$set: recall latency before any restart, 1 client, 10 s"
	local out baseline
	out=$(load --mode recall --space "$set" --fvecs "$queries" --clients 1 --seconds 10)
	echo "$out"
	baseline=$(echo "$out" | sed -n 's/.* p50=\([0-9.]*\).*/\1/p')

	say "$set: clean stop (-m fast, every file written), start from the graph files ($(load_average))"
	began=$(date +%s%N)
	as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -m fast -w stop >/dev/null
	echo "stop: $(milliseconds_since "$began") ms"
	startup_probe "$set" "$queries" "$baseline" --wait-linked 1 --rows "$rows"

	say "$set: CHECKPOINT and engram.checkpoint(), immediate stop, start from the graph files ($(load_average))"
	sql -c "CHECKPOINT"
	began=$(date +%s%N)
	sql -c "SELECT engram.checkpoint()"
	echo "engram.checkpoint(): $(milliseconds_since "$began") ms"
	as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -m immediate -w stop >/dev/null
	startup_probe "$set" "$queries" "$baseline" --wait-linked 1 --rows "$rows"

	say "$set: what the load's comparison with the table reads: the space's ids in order"
	sql -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT id FROM engram.observations
	        WHERE space_id = (SELECT space_id FROM engram.space_catalog WHERE name = '$set') ORDER BY id"

	say "$set: engram.persist = off, clean stop, start relinking every row from the table ($(load_average))"
	sql -c "ALTER SYSTEM SET engram.persist = off" -c "SELECT pg_reload_conf()" >/dev/null
	while compgen -G "$CLUSTER/engram/*.graph" >/dev/null; do sleep 0.1; done
	began=$(date +%s%N)
	as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -m fast -w stop >/dev/null
	echo "stop: $(milliseconds_since "$began") ms"
	startup_probe "$set" "$queries" "$baseline" --wait-linked 1 --rows "$rows"
}

# Starts the stopped cluster and follows it with engram_load --mode startup
# (further arguments go to it); then the server's own account of the load.
startup_probe() {
	local set=$1 queries=$2 baseline=$3 lines since
	shift 3
	lines=$(wc -l <"$CLUSTER/server.log")
	since=$(date +%s%N)
	as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -l "$CLUSTER/server.log" -W start >/dev/null
	load --mode startup --space "$set" --fvecs "$queries" --since "$since" --baseline-ms "$baseline" \
		--seconds 1200 "$@"
	tail -n +"$((lines + 1))" "$CLUSTER/server.log" |
		grep -E 'redo done|ready to accept connections|engram loaded space|engram discarded|engram worker [0-9]+ loaded' ||
		true
}

# Builds pgvector from its source in ../shared/peers (for benchmarks only) and
# installs it into the PostgreSQL the benchmarks use; fails, saying so, when
# the source is not at hand.
build_pgvector() {
	local peers tarball
	peers=${ENGRAM_PEERS:-$(cd "$ROOT/.." && pwd)/shared/peers}
	tarball=$(compgen -G "$peers/pgvector-*.tar.gz" | head -n 1 || true)
	if [ -z "$tarball" ]; then
		say "pgvector: no source in $peers, skipped"
		return 1
	fi
	say "building pgvector from $tarball"
	rm -rf "$WORK/pgvector-build"
	mkdir -p "$WORK/pgvector-build"
	tar -C "$WORK/pgvector-build" -xzf "$tarball"
	local src
	src=$(dirname "$(compgen -G "$WORK/pgvector-build/*/Makefile" | head -n 1)")
	make -C "$src" -j 2 PG_CONFIG="$PGBIN/pg_config" >/dev/null
	make -C "$src" install PG_CONFIG="$PGBIN/pg_config" >/dev/null
}

# pgvector in a throwaway cluster: the same rows in a table with an HNSW
# index, then the first query after CHECKPOINT and an immediate stop.
startup_pgvector() {
	local set=$1 rows=$2
	local base="$SYNTH/$set/${set}_base.fvecs" queries="$SYNTH/$set/${set}_query.fvecs"
	build_pgvector || return 0
	start_cluster pgvector 54334 "shared_buffers = '1GB'" "maintenance_work_mem = '2GB'"
	say "pgvector: $rows rows of $set, HNSW index with m 16, ef_construction 64 (its defaults), ef_search 128"
	sql -c "CREATE EXTENSION vector SCHEMA public"
	load --mode plain_copy --fvecs "$base" --rows "$rows" --clients 4 --batch 500
	local dim began
	dim=$(sql -At -c "SELECT array_length(embedding, 1) FROM engram_bench.plain LIMIT 1")
	sql -c "CREATE TABLE engram_bench.vectors AS SELECT id, embedding::public.vector($dim) AS embedding FROM engram_bench.plain" \
		-c "DROP TABLE engram_bench.plain" -c "ALTER DATABASE postgres SET hnsw.ef_search = 128"
	began=$(date +%s%N)
	sql -c "CREATE INDEX ON engram_bench.vectors USING hnsw (embedding public.vector_l2_ops) WITH (m = 16, ef_construction = 64)"
	echo "index built in $(milliseconds_since "$began") ms"
	sql -c "VACUUM (ANALYZE) engram_bench.vectors"
	local query='SELECT id FROM engram_bench.vectors ORDER BY embedding OPERATOR(public.<->) $2::public.vector LIMIT $3'
	say "pgvector: query latency before the restart, 1 client, 10 s"
	local out baseline
	out=$(load --mode recall --space "$set" --fvecs "$queries" --clients 1 --seconds 10 --sql "$query")
	echo "$out"
	baseline=$(echo "$out" | sed -n 's/.* p50=\([0-9.]*\).*/\1/p')
	sql -At -c "SELECT 'index scans so far: ' || idx_scan FROM pg_stat_user_indexes WHERE relname = 'vectors'"
	say "pgvector: CHECKPOINT, immediate stop, start ($(load_average))"
	sql -c "CHECKPOINT"
	as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -m immediate -w stop >/dev/null
	startup_probe "$set" "$queries" "$baseline" --sql "$query"
	stop_cluster
}

# Filtered recall and forgetting (issue 11) on glove100, engram beside
# pgvector in one cluster (engram's workers idle while pgvector runs). Both
# get the same rows with the same metadata ({"user": one of 10,000,
# "category": c50/c10/c1/c01/other holding 50/10/1/0.1% and the rest} and an
# observed_at over 1,000 days, made up by engram_load from a fixed seed), and
# every query is scored against the exact filtered top-10 (filter_data.hpp).
# engram: one space with the defaults (cosine, m 16, ef_construction 200,
# engram.ef_search 128). pgvector: the metadata as the same jsonb column and
# observed_at as timestamptz, an HNSW index with the same m and
# ef_construction and hnsw.ef_search 128, asked with a WHERE clause on them,
# with hnsw.iterative_scan off, relaxed_order and strict_order (its default
# hnsw.max_scan_tuples, 20,000), then once more with a GIN index on the
# metadata and a B-tree on observed_at beside the HNSW index (what its README
# suggests first for filters), relaxed_order, leaving the choice to its
# planner; pgvector cases that take longer stop after 30 s (the queries
# answered by then are scored). Then the forgetting part: half of the rows
# deleted at random, recall over the rest once compacted (engram), and for
# pgvector after the DELETE and, with ENGRAM_FILTER_VACUUM=1, after VACUUM
# (which repairs its HNSW graph and took minutes here).
bench_filter() {
	local set="$ENGRAM_DATA/glove100/glove100"
	if [ ! -f "${set}_base.fvecs" ]; then
		say "filter: no glove100 in $ENGRAM_DATA, skipped"
		return 0
	fi
	local pgvector=1
	build_pgvector || pgvector=0
	start_cluster filter 54335 "shared_buffers = '1GB'" "maintenance_work_mem = '2GB'"
	((pgvector)) && sql -c "CREATE EXTENSION vector SCHEMA public"
	local data=(--fvecs "${set}_base.fvecs" --queries "${set}_query.fvecs" --rows 100000 --tenants 10000 --k 10)
	say "filtered recall, engram: COPY of glove100 with metadata into one space until linked, then 7 filter cases ($(load_average))"
	load --mode filtered --target engram --space glove "${data[@]}" --clients 4 --batch 500
	if ((pgvector)); then
		say "filtered recall, pgvector: the same rows, HNSW (m 16, ef_construction 200), ef_search 128, iterative scans off, relaxed, strict ($(load_average))"
		load --mode filtered --target pgvector "${data[@]}" --clients 4 --batch 500 --ef 128 --ef-construction 200 \
			--iterative off,relaxed_order,strict_order --case-seconds 30
		say "filtered recall, pgvector with a GIN index on metadata and a B-tree on observed_at, relaxed_order ($(load_average))"
		local began
		began=$(date +%s%N)
		sql -c "CREATE INDEX items_gin ON engram_bench.items USING gin (metadata jsonb_path_ops)" \
			-c "CREATE INDEX items_observed ON engram_bench.items (observed_at)" -c "ANALYZE engram_bench.items"
		echo "indexes built in $(milliseconds_since "$began") ms"
		load --mode filtered --target pgvector "${data[@]}" --load 0 --ef 128 --iterative relaxed_order \
			--label "pgvector+gin/btree" --case-seconds 30
		sql -c "DROP INDEX engram_bench.items_gin, engram_bench.items_observed"
	fi
	say "forgetting, engram: half of the rows deleted at random, recall before and after the compaction ($(load_average))"
	sql -At -c "SELECT 'engram.erase_within = ' || current_setting('engram.erase_within', true)"
	load --mode forget --target engram --space glove "${data[@]}" --clients 4 --batch 500 --seconds 900
	if ((pgvector)); then
		say "forgetting, pgvector: the same half deleted, recall before VACUUM (and after it with ENGRAM_FILTER_VACUUM=1) ($(load_average))"
		load --mode forget --target pgvector "${data[@]}" --ef 128 --seconds 900 --vacuum "${ENGRAM_FILTER_VACUUM:-0}"
	fi
	stop_cluster
}

# Many spaces (issue 12, item 3): engram with engram.max_spaces above the top
# level beside pgvector with one partial HNSW index per tenant, each in its own
# cluster, both with rows of one generator (test/bench/tenants.sql). engram: spaces
# created in bulk up to each level of ENGRAM_TENANTS_LEVELS, the first
# ENGRAM_TENANTS_FED of them fed ENGRAM_TENANTS_ROWS rows of 64-d; at each
# level ENGRAM_TENANTS_PROBES create_space calls, recall in a random fed space,
# the probes dropped again; at the end every space dropped, and the fed spaces
# made again. pgvector (test/bench/tenants_pgvector.sql), its lock table at
# PostgreSQL's defaults (max_worker_processes 8 again): tenants of the same
# rows (ENGRAM_TENANTS_PGVECTOR_ROWS a tenant: every CREATE INDEX scans the
# whole table) added with one partial index each until the first failure,
# ENGRAM_TENANTS_PGVECTOR_CAP tenants or ENGRAM_TENANTS_PGVECTOR_MINUTES, with
# the same recall measurements at ENGRAM_TENANTS_PGVECTOR_LEVELS and at the
# last tenant added. Recall: pgbench for ENGRAM_TENANTS_SECONDS, one client,
# and EXPLAIN ANALYZE of ENGRAM_TENANTS_EXPLAINS queries; then 2, 4 and 8
# clients at once (at every pgvector level, at engram's top level), since
# pgvector's lock table is shared by every session. At each engram level the
# CPU its idle workers use is measured too. ENGRAM_TENANTS_PGVECTOR=off runs
# engram's part alone.
TENANTS_DIM=64

bench_tenants() {
	tenants_engram
	[[ ${ENGRAM_TENANTS_PGVECTOR:-on} == off ]] || tenants_pgvector
}

# call_latency LABEL FILE: runs FILE's calls, each in its own transaction
# (BEGIN, the call, COMMIT, after \timing on), and prints the client-side
# latency of the calls and of their commits (which wait for the WAL flush).
call_latency() {
	local label=$1 file=$2
	sql -f "$file" | awk '/^Time: / { n++; if (n % 3 == 2) print "call", $2; else if (n % 3 == 0) print "commit", $2 }' |
		sort -k1,1 -k2,2n | awk -v label="$label" '
		{ v[$1, ++n[$1]] = $2; total[$1] += $2 }
		function line(kind, c) {
			c = n[kind]
			return sprintf("mean %.2f ms, p50 %.2f ms, p99 %.2f ms, max %.2f ms", total[kind] / c, v[kind, int(c * 0.50) + 1],
			               v[kind, int(c * 0.99) + 1], v[kind, c])
		}
		END { printf "%s: %d calls, %s; their commits %s\n", label, n["call"], line("call"), line("commit") }'
}

# recall_latency LABEL TENANTS QUERY: QUERY (:t the tenant, :cue the cue)
# through pgbench, tenants 1..TENANTS at random; then, in a new session, the
# first query's time and the mean planning and execution times of EXPLAIN
# ANALYZE over tenants spread over 1..TENANTS, with the scans it chose.
recall_latency() {
	local label=$1 tenants=$2 query=${3//:cue/$TENANTS_CUE}
	local seconds=${ENGRAM_TENANTS_SECONDS:-10} explains=${ENGRAM_TENANTS_EXPLAINS:-50}
	local script="$WORK/tenants-recall.sql" plan="$WORK/tenants-explain.sql" i
	printf '\\set t random(1, %d)\n%s;\n' "$tenants" "$query" >"$script"
	{ as_user "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -n -M simple -c 1 -T "$seconds" -f "$script" postgres || true; } 2>&1 |
		awk -v label="$label" '/^latency average/ { latency = $4 } /^tps/ { tps = $3 } /ERROR|error/ { print }
			END { if (tps > 0) printf "%s: pgbench, mean %.3f ms, %.0f per second\n", label, latency, tps
			      else printf "%s: pgbench, no answer\n", label }'
	{
		echo '\timing on'
		echo "${query//:t/1};"
		echo '\timing off'
		for ((i = 0; i < explains; i++)); do
			echo "EXPLAIN (ANALYZE, COSTS OFF) ${query//:t/$((1 + (i * 7919) % tenants))};"
		done
	} >"$plan"
	{ sql -At -f "$plan" || true; } 2>&1 | awk -v label="$label" -v n="$explains" '
		/^Time: / && first == "" { first = $2 } /ERROR/ { print }
		/Planning Time:/ { planning += $3 } /Execution Time:/ { execution += $3 }
		/Index Scan using/ { idx++ } /Seq Scan/ { seq++ }
		END { printf "%s: first query of a new session %.2f ms; EXPLAIN ANALYZE of %d: planning %.3f ms, execution %.3f ms (mean)%s\n",
		      label, first, n, planning / n, execution / n,
		      idx + seq ? sprintf("; %d index scans, %d sequential scans", idx, seq) : "" }'
}

# clients_recall LABEL TENANTS QUERY CLIENTS...: QUERY through pgbench with
# each number of concurrent CLIENTS for ENGRAM_TENANTS_SECONDS, with the
# clients it aborted on an error and the first such error.
clients_recall() {
	local label=$1 tenants=$2 query=${3//:cue/$TENANTS_CUE} clients
	shift 3
	printf '\\set t random(1, %d)\n%s;\n' "$tenants" "$query" >"$WORK/tenants-recall.sql"
	for clients in "$@"; do
		{ as_user "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -n -M simple -c "$clients" -j "$clients" \
			-T "${ENGRAM_TENANTS_SECONDS:-10}" -f "$WORK/tenants-recall.sql" postgres || true; } 2>&1 |
			awk -v label="$label" -v c="$clients" '/^latency average/ { latency = $4 } /^tps/ { tps = $3 }
				/aborted in command/ { aborted++; if (error == "") { error = $0; sub(/.*ERROR: */, "", error) } }
				/^number of transactions actually processed/ { done = $6 }
				END { printf "%s, %d clients: %s recalls, mean %.3f ms, %.0f per second; %d clients aborted%s\n", label, c,
				      done, latency, tps, aborted, aborted ? " on: " error : "" }'
	done
}

# tenants_feed FIRST LAST: ENGRAM_TENANTS_ROWS rows into each of the spaces
# tenantFIRST..tenantLAST, 100 spaces a transaction, until linked.
tenants_feed() {
	local first=$1 last=$2 rows=${ENGRAM_TENANTS_ROWS:-100} from
	for ((from = first; from <= last; from += 100)); do
		sql -c "INSERT INTO engram.observations (space_id, embedding)
		        SELECT c.space_id, engram_bench.vec(g, r, $TENANTS_DIM)
		        FROM generate_series($from, $((from + 99 < last ? from + 99 : last))) AS g
		        JOIN engram.space_catalog AS c ON c.name = 'tenant' || g
		        CROSS JOIN generate_series(1, $rows) AS r"
	done
	sql -At -c "SELECT 'spaces $first..$last fed $rows rows each, linked: '
	            || bool_and(engram.wait_linked('tenant' || g, NULL, 600000)) FROM generate_series($first, $last) AS g"
}

# tenants_create FIRST LAST: the spaces tenantFIRST..tenantLAST, 1,000 a transaction.
tenants_create() {
	local first=$1 last=$2 from
	for ((from = first; from <= last; from += 1000)); do
		sql -c "SELECT count(engram.create_space('tenant' || g, dim => $TENANTS_DIM, metric => 'l2'))
		        FROM generate_series($from, $((from + 999 < last ? from + 999 : last))) AS g" >/dev/null
	done
}

# tenants_memory LABEL: what engram.spaces says of every space, and how long it took to say it.
tenants_memory() {
	local began
	began=$(date +%s%N)
	sql -At -c "SELECT '$1: ' || count(*) || ' spaces, memory_bytes ' || coalesce(sum(memory_bytes), 0) || ' in all, '
	            || count(*) FILTER (WHERE state <> 'ready') || ' not ready, '
	            || (SELECT count(*) FROM engram.observations) || ' rows' FROM engram.spaces"
	echo "(engram.spaces read in $(milliseconds_since "$began") ms)"
}

# CPU time the engram workers and writer spend in 20 s with nothing to do.
tenants_idle_cpu() {
	local pids before after pid
	pids=$(sql -At -c "SELECT pid FROM pg_stat_activity WHERE backend_type LIKE 'engram%'")
	cpu_ticks() {
		local total=0 p
		for p in $pids; do
			total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
		done
		echo "$total"
	}
	before=$(cpu_ticks)
	sleep 20
	after=$(cpu_ticks)
	echo "$1: the engram workers and writer used $(((after - before) * 1000 / $(getconf CLK_TCK))) ms of CPU in 20 idle seconds"
}

tenants_engram() {
	local levels=(${ENGRAM_TENANTS_LEVELS:-10 1000 10000 100000})
	local fed=${ENGRAM_TENANTS_FED:-1000} probes=${ENGRAM_TENANTS_PROBES:-200}
	local top=${levels[-1]}
	start_cluster tenants 54336 "engram.max_spaces = $((top + top / 100 + probes))"
	sql -f "$WORK/test/bench/tenants.sql"
	TENANTS_CUE="'$(sql -At -c "SELECT engram_bench.vec(0, 0, $TENANTS_DIM)")'::real[]"
	sql -At -c "SELECT 'engram.max_spaces = ' || current_setting('engram.max_spaces') || ', engram shared memory '
	            || pg_size_pretty(size) || ', of which ' || pg_size_pretty(size - pg_size_bytes(current_setting('engram.memory_limit'))
	            - pg_size_bytes(current_setting('engram.ring_size'))) || ' beside engram.memory_limit ('
	            || current_setting('engram.memory_limit') || ') and engram.ring_size (' || current_setting('engram.ring_size')
	            || '): the space directory, backlog and headers'
	            FROM pg_shmem_allocations WHERE name = 'engram'"
	local lines created=0 fed_done=0 level began i file="$WORK/tenants-probes.sql"
	lines=$(wc -l <"$CLUSTER/server.log")
	for level in "${levels[@]}"; do
		say "engram: spaces $((created + 1))..$level created, 1,000 a transaction ($(load_average))"
		began=$(date +%s%N)
		tenants_create $((created + 1)) "$level"
		echo "created in $(milliseconds_since "$began") ms"
		created=$level
		if ((fed_done < fed && fed_done < level)); then
			tenants_feed $((fed_done + 1)) $((level < fed ? level : fed))
			fed_done=$((level < fed ? level : fed))
		fi
		say "engram at $level spaces, $fed_done of them fed ($(load_average))"
		tenants_idle_cpu "engram at $level spaces"
		tenants_memory "engram at $level spaces"
		{
			echo '\o /dev/null'
			echo '\timing on'
			for ((i = 1; i <= probes; i++)); do
				echo "BEGIN; SELECT engram.create_space('probe$i', dim => $TENANTS_DIM, metric => 'l2'); COMMIT;"
			done
		} >"$file"
		call_latency "engram at $level spaces: create_space" "$file"
		recall_latency "engram at $level spaces, recall" "$fed_done" \
			"SELECT count(*) FROM engram.recall('tenant' || :t, :cue, 10)"
		if ((level == top)); then
			clients_recall "engram at $level spaces, recall" "$fed_done" \
				"SELECT count(*) FROM engram.recall('tenant' || :t, :cue, 10)" 2 4 8
		fi
		sed -i "s/SELECT engram.create_space('\(probe[0-9]*\)'[^;]*;/SELECT engram.drop_space('\1');/" "$file"
		call_latency "engram at $level spaces: drop_space" "$file"
	done
	say "engram: every space dropped, 1,000 a transaction ($(load_average))"
	began=$(date +%s%N)
	for ((i = 1; i <= created; i += 1000)); do
		sql -c "SELECT count(engram.drop_space('tenant' || g))
		        FROM generate_series($i, $((i + 999 < created ? i + 999 : created))) AS g" >/dev/null
	done
	echo "$created spaces dropped in $(milliseconds_since "$began") ms"
	tenants_memory "afterwards"
	say "engram: spaces 1..$fed_done created and fed once more ($(load_average))"
	tenants_create 1 "$fed_done"
	tenants_feed 1 "$fed_done"
	tenants_memory "made again"
	say "engram: the server log during the run, checkpoints left out"
	tail -n +"$((lines + 1))" "$CLUSTER/server.log" | grep -v -E 'checkpoint (starting|complete)' | tail -n 40 || true
	stop_cluster
}

tenants_pgvector() {
	build_pgvector || return 0
	local levels=(${ENGRAM_TENANTS_PGVECTOR_LEVELS:-10 100 1000}) cap=${ENGRAM_TENANTS_PGVECTOR_CAP:-20000}
	local minutes=${ENGRAM_TENANTS_PGVECTOR_MINUTES:-12} rows=${ENGRAM_TENANTS_PGVECTOR_ROWS:-10}
	start_cluster tenants-pgvector 54337 "max_worker_processes = 8"
	sql -c "CREATE EXTENSION vector SCHEMA public" -c "ALTER DATABASE postgres SET hnsw.ef_search = 128"
	sql -f "$WORK/test/bench/tenants.sql"
	sql -v dim="$TENANTS_DIM" -f "$WORK/test/bench/tenants_pgvector.sql"
	TENANTS_CUE="'$(sql -At -c "SELECT engram_bench.vec(0, 0, $TENANTS_DIM)::public.vector")'::public.vector"
	sql -At -c "SELECT 'pgvector ' || extversion FROM pg_extension WHERE extname = 'vector'" \
		-c "SELECT string_agg(name || ' = ' || setting, ', ' ORDER BY name) FROM pg_settings
		    WHERE name IN ('max_locks_per_transaction', 'max_connections', 'max_prepared_transactions',
		                   'autovacuum_max_workers', 'max_worker_processes', 'max_wal_senders', 'shared_buffers')"
	local deadline added=0 level stop="" began
	local query="SELECT id FROM engram_bench.items WHERE tenant = :t ORDER BY embedding OPERATOR(public.<->) :cue LIMIT 10"
	deadline=$(sql -At -c "SELECT clock_timestamp() + interval '$minutes minutes'")
	for level in "${levels[@]}" "$cap"; do
		((level > added && level <= cap)) || continue
		say "pgvector: tenants $((added + 1))..$level added, $rows rows and one partial HNSW index each ($(load_average))"
		began=$(date +%s%N)
		sql -c "CALL engram_bench.add_tenants($((added + 1)), $level, $rows, $TENANTS_DIM, '$deadline')"
		sql -At -c "SELECT count(*) || ' tenants added in $(milliseconds_since "$began") ms; per tenant: INSERT '
		            || round(avg(insert_ms)::numeric, 2) || ' ms, CREATE INDEX ' || round(avg(index_ms)::numeric, 2)
		            || ' ms (mean); last 100: INSERT ' || round(avg(insert_ms) FILTER (WHERE tenant > max - 100)::numeric, 2)
		            || ' ms, CREATE INDEX ' || round(avg(index_ms) FILTER (WHERE tenant > max - 100)::numeric, 2) || ' ms'
		            FROM engram_bench.tenant_added, (SELECT max(tenant) FROM engram_bench.tenant_added) AS m (max)
		            WHERE tenant > $added"
		added=$(sql -At -c "SELECT coalesce(max(tenant), 0) FROM engram_bench.tenant_added")
		stop=$(sql -At -c "SELECT tenant || ': ' || coalesce(sqlstate || ' ', '') || message
		                   || coalesce(E'\nDETAIL: ' || detail, '') || coalesce(E'\nHINT: ' || hint, '')
		                   || coalesce(E'\nCONTEXT: ' || context, '') FROM engram_bench.tenant_stop")
		sql -c "ANALYZE engram_bench.items" || echo "ANALYZE failed at $added tenants"
		say "pgvector at $added tenants ($(load_average))"
		sql -At -c "SELECT count(*) || ' indexes on items, ' || pg_size_pretty(pg_total_relation_size('engram_bench.items'))
		            FROM pg_index WHERE indrelid = 'engram_bench.items'::regclass"
		recall_latency "pgvector at $added tenants, recall" "$added" "$query"
		clients_recall "pgvector at $added tenants, recall" "$added" "$query" 2 4 8
		if [ -n "$stop" ]; then
			echo "adding stopped at tenant $stop"
			break
		fi
	done
	stop_cluster
}

# 768-d side by side (issue 12): engram in each storage encoding, pgvector and
# hnswlib on the same rows (synth768, 100,000 x 768 cosine; a prefix of the
# same mixture with its own exact ground truth when ENGRAM_CAPACITY_ROWS is
# smaller) with the same M and ef_construction: the space defaults, read from
# a space created with them, unless ENGRAM_CAPACITY_M and
# ENGRAM_CAPACITY_EF_CONSTRUCTION are given. One cluster (2 workers), every
# COPY from ENGRAM_CAPACITY_CLIENTS clients in batches of 500: first the
# baselines, COPY into engram.observations' shape without engram (plain_copy)
# and into pgvector's table without an index; then per encoding a COPY into
# engram.observations timed until engram.wait_linked, the space's memory_bytes
# per vector, and SQL recall (1 client, prepared, loopback) at each ef of
# ENGRAM_CAPACITY_EFS for ENGRAM_CAPACITY_SECONDS (and at least one pass over
# the 1,000 queries, scored against the exact top-10); then pgvector: a COPY
# into a table whose HNSW index (same M and ef_construction) exists before the
# data, its index and table bytes per vector, and the same sweep with
# hnsw.ef_search. Last, with the cluster stopped, recall_peer_bench builds
# hnswlib and engram's core in-process on 2 threads and runs the same sweep on
# one thread. The measurements go to ENGRAM_CAPACITY_OUT (docs/img):
# capacity768_qps_recall.dat and .png, with a summary printed at the end.
bench_capacity() {
	local rows=${ENGRAM_CAPACITY_ROWS:-100000} clients=${ENGRAM_CAPACITY_CLIENTS:-4}
	local out=${ENGRAM_CAPACITY_OUT:-$ROOT/docs/img} set=synth768
	CAPACITY_EFS=(${ENGRAM_CAPACITY_EFS:-16 32 48 64 96 128 192 256})
	((rows == 100000)) || set=synth768r$rows
	synthetic "$set" --dim 768 --rows "$rows" --queries 1000 --metric cosine
	CAPACITY_BASE="$SYNTH/$set/$set"
	CAPACITY_POINTS="$WORK/capacity-points.txt"
	: >"$CAPACITY_POINTS"
	local pgvector=1
	build_pgvector || pgvector=0
	start_cluster capacity 54338 "shared_buffers = '2GB'" "maintenance_work_mem = '2GB'" \
		"engram.overload_timeout = '10min'" "engram.max_overload_timeout = '10min'"
	local m=${ENGRAM_CAPACITY_M:-} efc=${ENGRAM_CAPACITY_EF_CONSTRUCTION:-} default_m default_efc
	sql -c "SELECT engram.create_space('capacity_defaults', dim => 768, metric => 'cosine')" >/dev/null
	read -r default_m default_efc < <(sql -At -F ' ' -c "SELECT m, ef_construction FROM engram.spaces
	                                                    WHERE name = 'capacity_defaults'")
	sql -c "SELECT engram.drop_space('capacity_defaults')" >/dev/null
	m=${m:-$default_m} efc=${efc:-$default_efc}
	CAPACITY_INGEST=(--fvecs "${CAPACITY_BASE}_base.fvecs" --rows "$rows" --clients "$clients" --batch 500)
	say "capacity: $rows x 768-d ($set), m $m, ef_construction $efc (space defaults: m $default_m, ef_construction" \
		"$default_efc), $clients clients, engram.ef_search default $(sql -At -c 'SHOW engram.ef_search') ($(load_average))"

	say "baseline: COPY into a table of engram.observations' shape without engram ($(load_average))"
	capacity_copy plain-copy "SELECT count(*) FROM engram_bench.plain" --mode plain_copy
	sql -c "DROP TABLE engram_bench.plain"
	if ((pgvector)); then
		sql -c "CREATE EXTENSION vector SCHEMA public"
		say "baseline: COPY into pgvector's table (id bigint, embedding vector(768)) without an index ($(load_average))"
		capacity_copy pgvector-plain-copy "SELECT count(*) FROM engram_bench.vectors" --mode plain_copy --target pgvector
		sql -c "DROP TABLE engram_bench.vectors"
	fi

	# Item 2's other goal: on glove100, COPY until linked at the space defaults
	# against a plain COPY of the same rows, in two alternating rounds.
	local glove="$ENGRAM_DATA/glove100/glove100_base.fvecs" round
	if [ -f "$glove" ]; then
		for round in 1 2; do
			say "glove100 round $round: plain COPY of its 100,000 rows, then COPY into a space at the defaults until linked ($(load_average))"
			load --mode plain_copy --fvecs "$glove" --rows 100000 --clients "$clients" --batch 500
			sql -c "DROP TABLE engram_bench.plain"
			sql -c "SELECT engram.create_space('capacity_glove$round', dim => 100, metric => 'cosine')" >/dev/null
			load --mode copy --space "capacity_glove$round" --fvecs "$glove" --rows 100000 --clients "$clients" \
				--batch 500 --wait-linked 1
			sql -c "SELECT engram.drop_space('capacity_glove$round')" >/dev/null
		done
	else
		say "glove100: not found in $ENGRAM_DATA, skipped"
	fi

	local storage
	for storage in ${ENGRAM_CAPACITY_STORAGES:-f32 f16 sq8}; do
		say "engram $storage: COPY until every row is linked ($(load_average))"
		sql -c "SELECT engram.create_space('capacity_$storage', dim => 768, metric => 'cosine', m => $m,
		        ef_construction => $efc, storage => '$storage')" >/dev/null
		capacity_copy "engram-$storage" "SELECT observations || ' stored, ' || linked || ' linked'
		              FROM engram.spaces WHERE name = 'capacity_$storage'" --mode copy --space "capacity_$storage"
		sql -At -c "SELECT 'memory ' || 'engram-$storage ' || round(memory_bytes::numeric / observations)
		            FROM engram.spaces WHERE name = 'capacity_$storage'" | tee -a "$CAPACITY_POINTS"
		sql -c "VACUUM (ANALYZE) engram.observations"
		say "engram $storage: SQL recall, 1 client, each ef ($(load_average))"
		capacity_sweep "engram-$storage-sql" --space "capacity_$storage"
	done
	sql -At -c "SELECT 'engram.observations on disk: ' || round(pg_total_relation_size('engram.observations')::numeric
	            / count(*)) || ' bytes per row (table, TOAST and indexes)' FROM engram.observations"

	if ((pgvector)); then
		say "pgvector: COPY into a table with an HNSW index (vector_cosine_ops, m $m, ef_construction $efc) made before the data ($(load_average))"
		capacity_copy pgvector-hnsw-copy "SELECT count(*) || ' rows committed' FROM engram_bench.vectors" \
			--mode copy --target pgvector --metric cosine --m "$m" --ef-construction "$efc"
		sql -At -c "SELECT 'memory pgvector-index ' || round(pg_relation_size('engram_bench.vectors_hnsw')::numeric / count(*))
		            || E'\nmemory pgvector-table ' || round(pg_table_size('engram_bench.vectors')::numeric / count(*))
		            FROM engram_bench.vectors" | tee -a "$CAPACITY_POINTS"
		sql -c "VACUUM (ANALYZE) engram_bench.vectors"
		say "pgvector: SQL recall, 1 client, each hnsw.ef_search ($(load_average))"
		capacity_sweep pgvector-sql --target pgvector --metric cosine
		sql -At -c "SELECT 'pgvector index scans: ' || idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'vectors_hnsw'"
	fi
	((${ENGRAM_CAPACITY_HUGE_PAGES:-1})) && capacity_huge_pages "$pgvector" "$m" "$efc"
	stop_cluster

	say "in-process: hnswlib and engram's core on the same rows, built on 2 threads, searched on 1 ($(load_average))"
	ENGRAM_PEER_DATA="$SYNTH" ENGRAM_PEER_SET="$set" ENGRAM_PEER_M="$m" ENGRAM_PEER_EF_CONSTRUCTION="$efc" \
		ENGRAM_PEER_EFS=$(IFS=,; echo "${CAPACITY_EFS[*]}") "$ROOT/build/release/recall_peer_bench" \
		--benchmark_counters_tabular=true --benchmark_out="$WORK/capacity-peers.json" --benchmark_out_format=json

	say "capacity: summary ($rows x 768-d, m $m, ef_construction $efc)"
	mkdir -p "$out"
	python3 "$ROOT/test/bench/capacity_plot_data.py" "$CAPACITY_POINTS" "$WORK/capacity-peers.json" \
		>"$out/capacity768_qps_recall.dat"
	gnuplot -e "data='$out/capacity768_qps_recall.dat'; out='$out/capacity768_qps_recall.png';
	            subtitle='$rows rows, M $m, ef_construction $efc'" "$ROOT/test/bench/plot_capacity.gp"
	echo "written: $out/capacity768_qps_recall.dat, $out/capacity768_qps_recall.png; raw: $CAPACITY_POINTS, $WORK/capacity-peers.json"
}

# capacity_huge_pages PGVECTOR M EF_CONSTRUCTION: the f32 space (and
# pgvector, if it ran) swept again after a restart with huge_pages = on, which
# maps PostgreSQL's main shared memory segment, engram's graphs and pgvector's
# buffers included, with 2 MB pages; then the COPYs again, into fresh f32 and
# sq8 spaces and into pgvector's HNSW table. The pages are reserved for the run
# and given back after it.
capacity_huge_pages() {
	local pgvector=$1 m=$2 efc=$3 before pages storage
	before=$(sysctl -n vm.nr_hugepages)
	# shared_buffers 2GB + engram.memory_limit 4GB + the ring and the rest
	sysctl -q -w vm.nr_hugepages=3300
	pages=$(sysctl -n vm.nr_hugepages)
	say "huge pages: $pages of 2 MB reserved; restart with huge_pages = on ($(load_average))"
	if ! as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -l "$CLUSTER/server.log" -m fast -w -o "-c huge_pages=on" \
		restart >/dev/null; then
		say "huge pages: the server would not start with huge_pages = on; skipped"
		as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -l "$CLUSTER/server.log" -w start >/dev/null
		sysctl -q -w vm.nr_hugepages="$before"
		return 0
	fi
	sql -At -c "SELECT 'huge pages: f32 space loaded and linked: ' || engram.wait_linked('capacity_f32', NULL, 600000)"
	sql -At -c "SHOW huge_pages"
	grep -E 'HugePages_(Total|Free|Rsvd)' /proc/meminfo | tr -s ' ' | paste -sd ' '
	say "engram f32 with huge pages: SQL recall, 1 client, each ef ($(load_average))"
	capacity_sweep "engram-f32-sql-huge" --space capacity_f32
	if ((pgvector)); then
		say "pgvector with huge pages: SQL recall, 1 client, each hnsw.ef_search ($(load_average))"
		capacity_sweep pgvector-sql-huge --target pgvector --metric cosine
	fi
	for storage in f32 sq8; do
		say "engram $storage with huge pages: COPY until every row is linked ($(load_average))"
		sql -c "SELECT engram.create_space('capacity_${storage}_huge', dim => 768, metric => 'cosine', m => $m,
		        ef_construction => $efc, storage => '$storage')" >/dev/null
		capacity_copy "engram-$storage-huge" "SELECT observations || ' stored, ' || linked || ' linked'
		              FROM engram.spaces WHERE name = 'capacity_${storage}_huge'" --mode copy \
			--space "capacity_${storage}_huge"
	done
	if ((pgvector)); then
		say "pgvector with huge pages: COPY into a table with an HNSW index made before the data ($(load_average))"
		capacity_copy pgvector-hnsw-copy-huge "SELECT count(*) || ' rows committed' FROM engram_bench.vectors" \
			--mode copy --target pgvector --metric cosine --m "$m" --ef-construction "$efc"
	fi
	as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -m fast -w stop >/dev/null
	sysctl -q -w vm.nr_hugepages="$before"
	as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -l "$CLUSTER/server.log" -w start >/dev/null
}

# capacity_copy LABEL PROGRESS_QUERY LOAD_OPTION...: one COPY of the section's
# rows through engram_load, PROGRESS_QUERY's answer printed every 30 s while it
# runs; its rate (engram: until linked) is recorded under LABEL.
capacity_copy() {
	local label=$1 query=$2 began seconds=0 result="$WORK/capacity-copy.out"
	shift 2
	began=$(date +%s)
	load "$@" "${CAPACITY_INGEST[@]}" --wait-linked 1 >"$result" &
	local loader=$!
	while kill -0 "$loader" 2>/dev/null; do
		sleep 1
		if ((++seconds % 30 == 0)) && kill -0 "$loader" 2>/dev/null; then
			echo "  $label after ${seconds} s: $(sql -At -c "$query" 2>&1 | head -n 1)"
		fi
	done
	wait "$loader"
	cat "$result"
	awk -v label="$label" '/^mode=/ { for (i = 1; i <= NF; i++) if ($i ~ /^rate=/) rate = substr($i, 6) }
		/^linked_all=t/ { for (i = 1; i <= NF; i++) if ($i ~ /^indexing_rate=/) rate = substr($i, 15) }
		/refused_batches=[1-9]/ { print "capacity: " label " had batches refused, its rate counts the rows sent" > "/dev/stderr" }
		END { print "ingest", label, rate }' "$result" >>"$CAPACITY_POINTS"
	echo "$label: $(tail -n 1 "$CAPACITY_POINTS" | cut -d' ' -f3) rows/s, whole run $(($(date +%s) - began)) s"
}

# capacity_sweep SERIES LOAD_OPTION...: SQL recall of the section's queries with
# one client, once as a warm-up, once at the server's default ef, then at
# each ef of CAPACITY_EFS for ENGRAM_CAPACITY_SECONDS and at least one
# pass, scored against the exact top-10 and recorded under SERIES.
capacity_sweep() {
	local series=$1 ef line
	shift
	local queries=(--fvecs "${CAPACITY_BASE}_query.fvecs" --truth "${CAPACITY_BASE}_groundtruth.ivecs" --clients 1)
	load --mode recall "$@" "${queries[@]}" >/dev/null
	echo "$series, default ef: $(load --mode recall "$@" "${queries[@]}")"
	for ef in "${CAPACITY_EFS[@]}"; do
		line=$(load --mode recall "$@" "${queries[@]}" --ef "$ef" --seconds "${ENGRAM_CAPACITY_SECONDS:-10}")
		echo "$series, ef $ef: $line"
		echo "$line" | awk -v series="$series" -v ef="$ef" '{ for (i = 1; i <= NF; i++) {
			if ($i ~ /^qps=/) qps = substr($i, 5); if ($i ~ /^recall@10=/) recall = substr($i, 11) } }
			END { print "recall", series, ef, recall, qps }' >>"$CAPACITY_POINTS"
	done
}

# The load scenarios the seed (the system this project replaces) specified,
# scaled to this machine (issue 12, item 4): a ramp of offered rates, 10
# recalls/s during sustained ingest, worker scaling, batch sizes and memory at
# 1 M observations. Each ingest run offers its rate for SEED_SECONDS and then
# waits until everything sent is linked; engram_load reports the committed
# (durable, store-only) rate apart from the linked rate, the refused batches
# and how often engram.pressure() was overloaded. ENGRAM_SEED_SECONDS and
# ENGRAM_SEED_ROWS shorten the runs while developing.
SEED_SECONDS=${ENGRAM_SEED_SECONDS:-15}
SEED_ROWS=${ENGRAM_SEED_ROWS:-1000000}

bench_seed() {
	synthetic start1m --dim 128 --rows 1000000 --queries 100 --metric l2
	synthetic synth768 --dim 768 --rows 100000 --queries 1000 --metric cosine
	local base="$SYNTH/start1m/start1m" base768="$SYNTH/synth768/synth768"
	(while sleep 30; do echo "$(date -u +%H:%M:%S) $(load_average)"; done) >"$WORK/seed-load-average.log" &
	local sampler=$!
	start_cluster seed 54339 "engram.memory_limit = '8GB'"
	seed_ramp 128 l2 "${base}_base.fvecs" 1000000
	seed_ramp 768 cosine "${base768}_base.fvecs" 200000
	seed_recall "$base"
	seed_batches "${base}_base.fvecs"
	stop_cluster
	seed_workers "${base}_base.fvecs"
	seed_memory "${base}_base.fvecs"
	kill "$sampler"
	say "load average every 30 s during the section"
	cat "$WORK/seed-load-average.log"
}

# seed_run LABEL ARGS...: one engram_load ingest run, its output kept in $WORK/seed-LABEL.out.
seed_run() {
	local label=$1
	shift
	say "seed: $label ($(load_average))"
	load "$@" --seconds "$SEED_SECONDS" --wait-linked 1 | tee "$WORK/seed-$label.out"
}

# seed_ramp DIM METRIC BASE MAX_ROWS: 10k, 50k, 100k and 200k observations/s
# offered through observe_batch (4 clients, batches of 500), each into a fresh
# space; MAX_ROWS bounds the rows prepared (and is never reached: the clients'
# rows are encoded before the clock starts).
seed_ramp() {
	local dim=$1 metric=$2 base=$3 max_rows=$4 rate rows
	for rate in 10000 50000 100000 200000; do
		rows=$((rate * SEED_SECONDS < max_rows ? rate * SEED_SECONDS : max_rows))
		seed_run "ramp$dim-$rate" --mode observe_batch --space "ramp${dim}_$rate" --metric "$metric" --fvecs "$base" \
			--rows "$rows" --clients 4 --batch 500 --rate "$rate"
	done
}

# seed_recall BASE: one client asks 10 recalls/s of the 128-d space the
# 200k ramp step filled, idle and then while observe_batch streams new rows
# into that space at 80% of the link rate that step measured and at twice it.
seed_recall() {
	local base=$1 space=ramp128_200000 linked rate first=500000
	linked=$(grep -o 'linked_rate_while_sending=[0-9]*' "$WORK/seed-ramp128-200000.out" | cut -d= -f2)
	say "seed: 10 recalls/s for $SEED_SECONDS s, idle ($(load_average))"
	load --mode recall --space "$space" --fvecs "${base}_query.fvecs" --clients 1 --rate 10 --seconds "$SEED_SECONDS"
	for rate in $((linked * 8 / 10 / 1000 * 1000)) $((linked * 2 / 1000 * 1000)); do
		say "seed: 10 recalls/s for $SEED_SECONDS s while $rate observations/s are offered to the same space ($(load_average))"
		load --mode observe_batch --space "$space" --fvecs "${base}_base.fvecs" --first "$first" \
			--rows $((rate * (SEED_SECONDS + 8))) --clients 4 --batch 500 --rate "$rate" --seconds $((SEED_SECONDS + 8)) \
			--wait-linked 1 >"$WORK/seed-stream-$rate.out" &
		local streamer=$!
		sleep 3
		load --mode recall --space "$space" --fvecs "${base}_query.fvecs" --clients 1 --rate 10 --seconds "$SEED_SECONDS"
		wait $streamer
		cat "$WORK/seed-stream-$rate.out"
		first=750000
	done
}

# seed_batches BASE: observe_batch as fast as 4 clients can with batches of
# 10, 100 and 1,000 rows, and COPY with batches of 500, each into a fresh space.
seed_batches() {
	local base=$1 batch
	for batch in 10 100 1000; do
		seed_run "batch-$batch" --mode observe_batch --space "batch_$batch" --fvecs "$base" --rows 1000000 \
			--clients 4 --batch "$batch"
	done
	seed_run copy-500 --mode copy --space copy_500 --fvecs "$base" --rows 1000000 --clients 4 --batch 500
}

# seed_workers BASE: the same offered load (50,000 observations/s) with
# engram.workers 1, 2 and 4 (4 oversubscribes the 2 cores), each in a fresh cluster.
seed_workers() {
	local base=$1 workers
	for workers in 1 2 4; do
		start_cluster "seed-workers$workers" 54339 "engram.workers = $workers"
		seed_run "workers-$workers" --mode observe_batch --space "workers_$workers" --fvecs "$base" \
			--rows $((50000 * SEED_SECONDS)) --clients 4 --batch 500 --rate 50000
		stop_cluster
	done
}

# seed_memory BASE: SEED_ROWS 128-d rows by COPY into one f32 space until
# linked, then the same rows into an sq8 space, with what each holds.
seed_memory() {
	local base=$1 storage
	start_cluster seed-memory 54339 "engram.memory_limit = '8GB'"
	for storage in f32 sq8; do
		sql -c "SELECT engram.create_space('mem_$storage', dim => 128, metric => 'l2', storage => '$storage')" >/dev/null
		say "seed: $SEED_ROWS x 128-d into one $storage space by COPY until linked ($(load_average))"
		load --mode copy --space "mem_$storage" --fvecs "$base" --rows "$SEED_ROWS" --clients 4 --batch 500 \
			--wait-linked 1
		sql -c "SELECT name, storage, observations, linked, memory_bytes, pg_size_pretty(memory_bytes) AS memory,
		               round(memory_bytes::numeric / nullif(observations, 0)) AS bytes_per_observation
		        FROM engram.spaces ORDER BY name" \
			-c "SELECT used_bytes, capacity_bytes, pg_size_pretty(used_bytes) AS used FROM engram.memory_usage()" \
			-c "SELECT count(*) AS rows, pg_total_relation_size('engram.observations') AS table_bytes,
			           pg_size_pretty(pg_total_relation_size('engram.observations')) AS table_size,
			           round(pg_total_relation_size('engram.observations')::numeric / count(*)) AS table_bytes_per_row
			    FROM engram.observations"
	done
	stop_cluster
}

# The Grafana dashboard (docs/monitoring/engram-dashboard.json) over a real
# run: Debian's prometheus scrapes the metrics endpoint every second while
# engram_load streams 128-d rows into one space at 3,000 rows/s (below the
# link rate) and recalls from it 10 times a second; 40 s in, four COPY clients
# load 200,000 more rows into a second space as fast as they can (backpressure
# and a linking lag); then linking catches up. render_dashboard.py draws the
# dashboard's panels from Prometheus' answers to their own queries into
# docs/img/dashboard.png (Grafana itself is not packaged for Debian 12).
bench_dashboard() {
	synthetic start1m --dim 128 --rows 1000000 --queries 100 --metric l2
	local base="$SYNTH/start1m/start1m" web=127.0.0.1:9190 dir="$WORK/prometheus" started
	start_cluster dashboard 54339 "engram.metrics_address = '127.0.0.1:9188'"
	rm -rf "$dir" && mkdir -p "$dir"
	cat >"$dir/prometheus.yml" <<'YAML'
global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: engram
    static_configs: [{targets: ['127.0.0.1:9188']}]
YAML
	prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" --web.listen-address="$web" \
		--log.level=warn >"$dir/log" 2>&1 &
	local prometheus_pid=$!
	python3 -c "
import time, urllib.request
for _ in range(120):
    try:
        urllib.request.urlopen('http://$web/-/ready', timeout=1); break
    except Exception:
        time.sleep(0.5)"
	sql -c "SELECT engram.create_space('steady', 128, 'l2'), engram.create_space('burst', 128, 'l2')" >/dev/null
	started=$(date +%s)
	sleep 10
	say "dashboard: 3,000 rows/s into 'steady' and 10 recalls/s for 150 s; a COPY burst into 'burst' at 40 s ($(load_average))"
	load --mode observe_batch --space steady --fvecs "${base}_base.fvecs" --rows 450000 --clients 2 \
		--batch 100 --rate 3000 --seconds 150 >"$WORK/dashboard-steady.out" &
	local steady=$!
	sleep 5
	load --mode recall --space steady --fvecs "${base}_query.fvecs" --clients 1 --rate 10 --seconds 140 \
		>"$WORK/dashboard-recall.out" &
	local recall=$!
	sleep 35
	load --mode copy --space burst --fvecs "${base}_base.fvecs" --first 500000 --rows 200000 --clients 4 \
		--batch 500 | tee "$WORK/dashboard-burst.out"
	wait "$steady" "$recall"
	cat "$WORK/dashboard-steady.out" "$WORK/dashboard-recall.out"
	sql -c "SELECT engram.wait_linked('steady'), engram.wait_linked('burst')" >/dev/null
	sleep 15
	python3 "$ROOT/test/scripts/render_dashboard.py" "http://$web" "$ROOT/docs/monitoring/engram-dashboard.json" \
		"$started" "$(date +%s)" "$ROOT/docs/img/dashboard.png" --step 2 --rate-window 10s
	say "dashboard: rendered docs/img/dashboard.png"
	kill "$prometheus_pid"
	stop_cluster
}

run_bench() {
	local sections=("$@")
	((${#sections[@]})) || sections=(ring ingest metrics hnsw indexing recall startup filter tenants capacity seed dashboard)
	install_packages
	build_core release
	build_extension
	local section
	for section in "${sections[@]}"; do
		case "$section" in
			ring | ingest | metrics | hnsw | indexing | recall | startup | filter | tenants | capacity | seed | dashboard) "bench_$section" ;;
			*) echo "unknown benchmark section $section" >&2; exit 2 ;;
		esac
	done
}

# The C++ files under version control (the format suite and command), or
# every C++ file of src/ and test/ in a tree that is not a git checkout.
cpp_files() {
	if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
		git -C "$ROOT" ls-files '*.cpp' '*.hpp' '*.h'
	else
		(cd "$ROOT" && find src test -name '*.cpp' -o -name '*.hpp' -o -name '*.h' | sort)
	fi
}

# clang-format 14 (Debian 12's): another version may format the same code differently.
CLANG_FORMAT=clang-format-14

format_check() {
	local offenders=() f
	cd "$ROOT"
	while read -r f; do
		"$CLANG_FORMAT" --dry-run --Werror "$f" 2>/dev/null || offenders+=("$f")
	done < <(cpp_files)
	if ((${#offenders[@]})); then
		for f in "${offenders[@]}"; do
			echo "$f: $("$CLANG_FORMAT" "$f" | diff "$f" - | grep -c '^<') lines would change"
		done
		echo "${#offenders[@]} file(s) differ from .clang-format; bash test/scripts/engram.sh format rewrites them"
		return 1
	fi
	echo "$(cpp_files | wc -l) files follow .clang-format"
}

run_format() {
	install_missing clang-format
	cd "$ROOT"
	cpp_files | xargs "$CLANG_FORMAT" -i
	git -C "$ROOT" diff --stat -- $(cpp_files)
}

failures=()
# Runs a suite in a subshell of its own, started outside any `if` or `||` so
# that `set -e` holds inside it: a failed build fails the suite. Sets
# suite_status to the suite's exit status.
run_suite() {
	local name=$1
	shift
	say "$name"
	suite_status=0
	("$@") &
	wait $! || suite_status=$?
	if [ $suite_status -eq 0 ]; then echo "$name: ok"; else echo "$name: FAILED"; failures+=("$name"); fi
}

# A suite that cannot run (what it tests did not build) counts as failed.
skip_suite() {
	say "$1"
	echo "$1: FAILED (not run: $2)"
	failures+=("$1")
}

wanted() { [ -z "${ENGRAM_SUITES:-}" ] || [[ " $ENGRAM_SUITES " == *" $1 "* ]]; }

core_tests() {
	local name=$1 sanitize=${2:-}
	build_core "$name" "$sanitize"
	(cd "$ROOT/build/$name" && ctest --output-on-failure --no-tests=error -j 2)
}

pg_regress_tests() {
	local out status=0
	out=$(as_user make -C "$WORK" installcheck PG_CONFIG="$PGBIN/pg_config" 2>&1) || status=$?
	echo "$out" | grep -E '^(ok|not ok|test |     |\s*[0-9]+ of|=+|\s*All)' || true
	if [ $status -ne 0 ]; then
		for diffs in "$WORK/regression.diffs" "$WORK/output_iso/regression.diffs"; do
			if [ -f "$diffs" ]; then cat "$diffs"; fi
		done
	fi
	local passed failed
	passed=$(echo "$out" | grep -cE '^ok |^test .* \.\.\. ok|     [a-z_]+ +\.\.\. ok' || true)
	failed=$(echo "$out" | grep -cE '^not ok |\.\.\. FAILED' || true)
	echo "pg_regress: $passed passed, $failed failed"
	[ $status -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}

tap_tests() {
	as_user make -C "$WORK" check-tap PG_CONFIG="$PGBIN/pg_config" ${ENGRAM_TAP:+PROVE_TESTS="$ENGRAM_TAP"}
}

run_tests() {
	install_packages
	WERROR=ON
	if wanted format; then run_suite "format" format_check; fi
	if wanted core; then run_suite "core unit tests" core_tests release; fi
	if wanted asan; then run_suite "core unit tests under AddressSanitizer" core_tests asan address; fi
	if wanted tsan; then run_suite "core unit tests under ThreadSanitizer" core_tests tsan thread; fi
	local built=0
	if wanted regress || wanted tap; then
		run_suite "building the extension" build_extension
		built=$suite_status
	fi
	# Without a fresh build, pg_regress and TAP would test whatever engram.so was installed before.
	if wanted regress; then
		if [ $built -eq 0 ]; then run_suite "pg_regress" pg_regress_tests; else skip_suite "pg_regress" "no build"; fi
	fi
	if wanted tap; then
		if [ $built -eq 0 ]; then run_suite "TAP tests" tap_tests; else skip_suite "TAP tests" "no build"; fi
	fi
	say "summary"
	if ((${#failures[@]} == 0)); then
		echo "all suites passed"
	else
		echo "${#failures[@]} suite(s) failed:"
		printf '  %s\n' "${failures[@]}"
		exit 1
	fi
}

case "${1:-}" in
	demo) run_demo ;;
	test) run_tests ;;
	bench) shift; run_bench "$@" ;;
	format) run_format ;;
	*) echo "usage: $0 demo|test|bench [section...]|format" >&2; exit 2 ;;
esac
