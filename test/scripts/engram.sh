#!/usr/bin/env bash
# The two set-up commands of the README, for a fresh Debian 12 machine, as root:
#
#   bash test/scripts/engram.sh demo   install what is missing, build, install, start a
#                                      throwaway cluster with engram preloaded and stream
#                                      observations into it from concurrent clients
#   bash test/scripts/engram.sh test   the same set-up, then every test suite: core unit
#                                      tests (plain, AddressSanitizer, ThreadSanitizer),
#                                      pg_regress and the TAP tests
#   bash test/scripts/engram.sh bench  the same set-up, then the benchmarks recorded in
#                                      docs/benchmarks.md
#
# PostgreSQL refuses to run as root, so servers and the PostgreSQL test suites
# run as the unprivileged user "engram" in a copy of the tree it owns.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
RUN_USER=engram
WORK=/tmp/engram-work
export ENGRAM_DATA=${ENGRAM_DATA:-$(cd "$ROOT/.." && pwd)/shared/data}

say() { printf '\n== %s\n' "$*"; }

install_packages() {
	local wanted=(postgresql-15 postgresql-server-dev-15 libpq-dev libtbb-dev libgtest-dev libbenchmark-dev
		libhnswlib-dev libipc-run-perl cmake g++ make gnuplot-nox)
	local missing=()
	for p in "${wanted[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	if ((${#missing[@]})); then
		say "installing ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
	id -u "$RUN_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$RUN_USER"
}

# Builds the core (CMake) in build/<name> with an optional sanitizer.
build_core() {
	local name=$1 sanitize=${2:-}
	cmake -S "$ROOT" -B "$ROOT/build/$name" -DENGRAM_SANITIZE="$sanitize" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$ROOT/build/$name" -j 2 >/dev/null
}

# Copies the tree to $WORK (owned by the run user), builds and installs the extension.
build_extension() {
	say "building and installing the extension"
	rm -rf "$WORK"
	mkdir -p "$WORK"
	tar -C "$ROOT" --exclude=./build --exclude=./.git -cf - . | tar -C "$WORK" -xf -
	make -C "$WORK" -j 2 >/dev/null
	make -C "$WORK" install >/dev/null
	chown -R "$RUN_USER" "$WORK"
}

as_user() { runuser -u "$RUN_USER" -- env ENGRAM_DATA="$ENGRAM_DATA" PATH="$PGBIN:$PATH" "$@"; }

# Starts a throwaway cluster in $WORK/cluster-<name> on loopback; stopped on exit.
start_cluster() {
	local name=$1 port=$2
	CLUSTER="$WORK/cluster-$name"
	PORT=$port
	say "starting a throwaway cluster in $CLUSTER (port $PORT, loopback only)"
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
	trap 'as_user "$PGBIN/pg_ctl" -D "'"$CLUSTER"'" -m fast stop >/dev/null 2>&1 || true' EXIT
	as_user "$PGBIN/pg_ctl" -D "$CLUSTER" -l "$CLUSTER/server.log" -w start >/dev/null
	as_user psql -X -q -h 127.0.0.1 -p "$PORT" -d postgres -c "CREATE EXTENSION engram"
}

load() {
	as_user "$ROOT/build/release/engram_load" --conninfo "host=127.0.0.1 port=$PORT dbname=postgres" "$@"
}

run_demo() {
	install_packages
	build_core release
	build_extension
	start_cluster demo 54329
	say "streaming 300,000 observations (128-d) from 4 clients through engram.observe_batch"
	load --mode observe_batch --space demo --dim 128 --rows 300000 --clients 4 --batch 500
	say "the space afterwards"
	as_user psql -X -h 127.0.0.1 -p "$PORT" -d postgres \
		-c "SELECT name, dim, metric, observations, generation, pg_size_pretty(memory_bytes) AS memory FROM engram.spaces" \
		-c "SELECT count(*) AS committed_rows FROM engram.observations" \
		-c "SELECT * FROM engram.pressure()"
}

# Benchmarks behind docs/benchmarks.md: the ring alone (Google Benchmark), then
# durable ingest through observe_batch and COPY beside a plain COPY of the
# same rows into a table of the same shape without engram, in one run.
run_bench() {
	install_packages
	build_core release
	build_extension
	say "ring: reserve+fill+commit with 1, 2 and 4 producers against one draining consumer"
	"$ROOT/build/release/ring_bench" --benchmark_min_time=2
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
}

failures=0
run_suite() {
	local name=$1
	shift
	say "$name"
	if "$@"; then echo "$name: ok"; else echo "$name: FAILED"; failures=$((failures + 1)); fi
}

core_tests() {
	local name=$1 sanitize=${2:-}
	build_core "$name" "$sanitize"
	(cd "$ROOT/build/$name" && ctest --output-on-failure -j 2)
}

pg_regress_tests() {
	local out status=0
	out=$(as_user make -C "$WORK" installcheck 2>&1) || status=$?
	echo "$out" | grep -E '^(ok|not ok|test |     |\s+[0-9]+ of|=+|All)' || true
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
	as_user make -C "$WORK" check-tap
}

run_tests() {
	install_packages
	run_suite "core unit tests" core_tests release
	run_suite "core unit tests under AddressSanitizer" core_tests asan address
	run_suite "core unit tests under ThreadSanitizer" core_tests tsan thread
	build_extension
	run_suite "pg_regress" pg_regress_tests
	run_suite "TAP tests" tap_tests
	say "summary"
	if [ $failures -eq 0 ]; then echo "all suites passed"; else echo "$failures suite(s) failed"; exit 1; fi
}

case "${1:-}" in
	demo) run_demo ;;
	test) run_tests ;;
	bench) run_bench ;;
	*) echo "usage: $0 demo|test|bench" >&2; exit 2 ;;
esac
