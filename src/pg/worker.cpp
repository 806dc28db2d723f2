// The worker pool: engram.workers background workers that move committed
// observations from the ring into the spaces' graphs and link them.
//
// Each worker's main thread does the PostgreSQL work: it drains the ring
// (storing is cheap: an append to the space's graph), loads from the table,
// resolves drops and rebuilds, and answers signals. Linking, the costly part,
// runs on the worker's LinkPool threads (oneTBB, pure core code), which every
// worker points at the same graphs: a hot space is linked by all of them.
//
// Draining. One worker at a time holds the ring's consumer token and drains a
// batch; a record is popped only after all of its rows are stored, or after
// its space was quarantined for not taking them (quarantine.hpp), so no
// space holds the ring back; a record too large to read at once is stored
// in chunks whose progress survives the worker (worker_store.cpp). Graphs
// are destroyed only by the token holder, so the drain needs no pins.
//
// Loading. Shared memory is empty after a server start or a crash restart,
// while the table holds every committed observation: the first worker loads
// every space from it (worker_load.cpp), and the pool links the result.
//
// Installations. The workers serve the installation of engram that exists in
// engram.database now; after DROP EXTENSION, or a drop and a new CREATE
// EXTENSION, they free the old installation's spaces and load the new one
// from its table like after a start (worker_instance.cpp).
//
// Signals. The LinkPool's threads are started with every signal blocked, so
// PostgreSQL's handlers only ever run on the main thread.
#include "pg/worker.hpp"

#include <signal.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <thread>

#include "core/link_pool.hpp"
#include "core/ring.hpp"
#include "pg/graph_files.hpp"
#include "pg/guc.hpp"
#include "pg/metrics.hpp"
#include "pg/pressure.hpp"
#include "pg/progress.hpp"
#include "pg/shared.hpp"
#include "pg/worker_compact.hpp"
#include "pg/worker_instance.hpp"
#include "pg/worker_load.hpp"
#include "pg/worker_store.hpp"

#include "pg/postgres.hpp"

extern "C" PGDLLEXPORT void engram_worker_main(Datum arg);

namespace {

constexpr int k_records_per_batch = 512;

int worker_index = -1;
std::unique_ptr<engram::core::LinkPool> link_pool;

WorkerSlot &
my_slot(void)
{
	return shared_state()->workers[worker_index];
}

void
set_state(WorkerState state)
{
	my_slot().state.store(state, std::memory_order_relaxed);
}

void
worker_detach(int, Datum)
{
	EngramShared *s = shared_state();
	if (s == nullptr || worker_index < 0)
		return;
	// Link threads stop before the process lets go of shared memory.
	if (link_pool)
		link_pool->stop();
	shared_ring().release_consumer(static_cast<std::uint32_t>(MyProcPid));
	my_slot().state.store(WORKER_STOPPED, std::memory_order_relaxed);
	my_slot().pid.store(0, std::memory_order_release);
}

// Frees the slots (and removes the graph files) of spaces whose drop has
// committed or whose creation was rolled back.
void
resolve_drops(void)
{
	auto visit = [](SpaceSlot &slot) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE)
			return;
		const std::int32_t space_id = slot.space_id;
		const DropOutcome created = directory_create_outcome(&slot);
		if (created == DropOutcome::aborted) {
			directory_free(&slot);
			graph_file_remove(space_id);
			return;
		}
		if (created == DropOutcome::committed)
			slot.create_xid.store(InvalidTransactionId, std::memory_order_release);
		const DropOutcome outcome = directory_drop_outcome(&slot);
		if (outcome == DropOutcome::committed) {
			// After the free, which waits for a write of the file in progress.
			directory_free(&slot);
			graph_file_remove(space_id);
		} else if (outcome == DropOutcome::aborted)
			slot.drop_xid.store(InvalidTransactionId, std::memory_order_release);
	};
	auto owed = [](const SpaceSlot &slot) {
		return slot.state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE &&
			   (slot.create_xid.load(std::memory_order_acquire) != InvalidTransactionId ||
				slot.drop_xid.load(std::memory_order_acquire) != InvalidTransactionId);
	};
	directory_visit_owing(DUTY_RESOLVE, visit, owed);
}

void
finish_load(void)
{
	const bool startup = load_filter.space_id < 0;
	filter_clear();
	if (!startup)
		return;
	shared_state()->load_state.store(LOAD_DONE, std::memory_order_release);
	ereport(LOG, (errmsg("engram worker %d finished loading the spaces from engram.observations", worker_index)));
}

// Starts link threads if there is anything to link (and linking is not
// paused), with every signal blocked so that threads oneTBB creates now
// never run a signal handler.
void
wake_linkers(void)
{
	if (!link_pool)
		return;
	link_pool->set_paused(engram_pause_linking);
	if (engram_pause_linking)
		return;
	sigset_t all, previous;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &previous);
	try {
		link_pool->wake();
	} catch (const std::exception &) {
		// Could not start a thread now: the next wake tries again.
	}
	pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

unsigned
link_threads(void)
{
	if (engram_link_threads > 0)
		return static_cast<unsigned>(engram_link_threads);
	const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
	const unsigned workers = static_cast<unsigned>(std::max(1, engram_workers));
	return std::max(1u, (cores + workers - 1) / workers);
}

void
start_link_pool(void)
{
	link_pool = std::make_unique<engram::core::LinkPool>(shared_arena(), directory_indexes(), link_threads(),
														 &my_slot().linked_total, &directory_in_use(),
														 directory_duties(), DUTY_LINK, metrics_linked_latency());
}

// Folds a new measurement into a shared rate (exponential smoothing; the
// first measurement is taken as it is).
void
smooth_rate(std::atomic<std::uint64_t> &rate, double measured)
{
	const double previous = static_cast<double>(rate.load(std::memory_order_relaxed));
	const double smoothed = previous == 0 ? measured : 0.8 * previous + 0.2 * measured;
	rate.store(static_cast<std::uint64_t>(smoothed), std::memory_order_relaxed);
}

void
update_drain_rate(std::uint64_t cells, TimestampTz started)
{
	long secs = 0;
	int usecs = 0;
	TimestampDifference(started, GetCurrentTimestamp(), &secs, &usecs);
	const double elapsed = static_cast<double>(secs) + usecs / 1e6;
	if (cells == 0 || elapsed <= 0)
		return;
	smooth_rate(shared_state()->drain_cells_per_second, static_cast<double>(cells) / elapsed);
}

// Measures this worker's link rate every 200 ms or more, counting only
// intervals that began with vectors waiting to be linked: an idle pipeline
// says nothing about how fast it links, and the rate answers exactly that
// when pressure estimates how long a backlog will take.
void
update_link_rate(TimestampTz now)
{
	static TimestampTz sampled_at = 0;
	static std::uint64_t linked_then = 0;
	static bool work_then = false;
	if (sampled_at != 0 && !TimestampDifferenceExceeds(sampled_at, now, 200))
		return;
	WorkerSlot &slot = my_slot();
	const std::uint64_t linked = slot.linked_total.load(std::memory_order_relaxed);
	if (sampled_at != 0 && work_then)
		smooth_rate(slot.linked_per_second,
					static_cast<double>(linked - linked_then) * USECS_PER_SEC / static_cast<double>(now - sampled_at));
	sampled_at = now;
	linked_then = linked;
	work_then = shared_backlog().unlinked_rows() > 0;
}

// One batch under the consumer token; true if it stored anything.
bool
drain_once(void)
{
	engram::core::Ring ring = shared_ring();
	const auto token = static_cast<std::uint32_t>(MyProcPid);
	if (!ring.try_acquire_consumer(token))
		return false;
	set_state(WORKER_DRAINING);
	const TimestampTz started = GetCurrentTimestamp();
	const std::uint64_t head_before = ring.head_position();
	resolve_drops();
	finish_rebuilds();
	start_rebuilds();
	compact_spaces();
	int taken = 0;
	while (taken < k_records_per_batch) {
		const engram::core::RecordView record = ring.peek();
		if (load_filter.active && record.position >= load_filter.tail_mark)
			finish_load();
		if (record.status != engram::core::PeekStatus::ready)
			break;
		const RecordFate fate = record_fate(record);
		if (fate == RecordFate::later)
			break;
		const std::int64_t stored = fate == RecordFate::drop ? 0 : store_record(record);
		backlog_record_consumed(record, stored);
		ring.pop(record);
		my_slot().stored_total.fetch_add(static_cast<std::uint64_t>(stored), std::memory_order_relaxed);
		metrics_observe_stored(record.stamp, static_cast<std::uint64_t>(stored));
		++taken;
	}
	end_transaction();
	cover_read_backs();
	ring.advance_published();
	backlog_census_if_due();
	update_drain_rate(ring.head_position() - head_before, started);
	if (!load_filter.active)
		ring.release_consumer(token);
	set_state(WORKER_IDLE);
	return taken > 0;
}

// Becomes the loader when nobody has loaded (or the loader died); returns
// true while loading still has to finish before anyone else may drain.
bool
loading_in_progress(void)
{
	EngramShared *s = shared_state();
	if (s->load_state.load(std::memory_order_acquire) == LOAD_DONE)
		return false;
	if (load_filter.active)
		return false; // we are the loader: drain_once finishes the job
	const std::int32_t loader = s->loader_pid.load(std::memory_order_acquire);
	if (s->load_state.load(std::memory_order_acquire) == LOAD_RUNNING && loader != 0 &&
		engram::core::process_alive(static_cast<std::uint32_t>(loader)))
		return true;
	if (!instance_current())
		return true; // the directory changes hands first (follow_instance)
	engram::core::Ring ring = shared_ring();
	const auto token = static_cast<std::uint32_t>(MyProcPid);
	if (!ring.try_acquire_consumer(token))
		return true;
	s->loader_pid.store(MyProcPid, std::memory_order_release);
	s->load_state.store(LOAD_RUNNING, std::memory_order_release);
	set_state(WORKER_LOADING);
	load_spaces(worker_index);
	wake_linkers();
	return false;
}

void
wait_for_extension(void)
{
	bool logged = false;
	while (!follow_instance(worker_index, true)) {
		set_state(WORKER_WAITING);
		if (!logged)
			ereport(LOG, (errmsg("engram worker %d is waiting for CREATE EXTENSION engram in database \"%s\"",
								 worker_index, engram_database)));
		logged = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	set_state(WORKER_IDLE);
}

} // namespace

void
worker_register(const char *function, const char *name, const char *type, int arg)
{
	BackgroundWorker worker;
	std::memset(&worker, 0, sizeof worker);
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "engram");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", type);
	worker.bgw_main_arg = Int32GetDatum(arg);
	RegisterBackgroundWorker(&worker);
}

void
worker_register_pool(void)
{
	for (int i = 0; i < engram_workers; ++i) {
		char name[BGW_MAXLEN];
		snprintf(name, sizeof name, "engram worker %d", i);
		worker_register("engram_worker_main", name, "engram worker", i);
	}
}

// The worker's life after the guard (see engram_worker_main).
static void
worker_main(void)
{
	// die() exits at the next CHECK_FOR_INTERRUPTS, also inside SPI.
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	// Registered before touching shared state, so an exit always releases it.
	before_shmem_exit(worker_detach, 0);
	progress_attach(worker_index);
	WorkerSlot &slot = my_slot();
	slot.pgprocno.store(MyProc->pgprocno, std::memory_order_relaxed);
	slot.pid.store(MyProcPid, std::memory_order_release);
	set_state(WORKER_IDLE);
	BackgroundWorkerInitializeConnection(engram_database, nullptr, 0);
	// The workers run as the bootstrap superuser: a search_path set for the
	// database (by its owner, who need not be a superuser) must not choose
	// the functions and operators their SQL runs, so it is overridden here,
	// and that SQL names everything with its schema as well.
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("engram worker");
	wait_for_extension();
	start_link_pool();
	TimestampTz previous = GetCurrentTimestamp();
	for (;;) {
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!follow_instance(worker_index, false)) {
			wait_for_extension();
			continue;
		}
		const TimestampTz started = GetCurrentTimestamp();
		bool progressed = false;
		if (!loading_in_progress())
			progressed = drain_once();
		wake_linkers();
		const TimestampTz finished = GetCurrentTimestamp();
		slot.busy_us.fetch_add(static_cast<std::uint64_t>(finished - started), std::memory_order_relaxed);
		slot.alive_us.fetch_add(static_cast<std::uint64_t>(finished - previous), std::memory_order_relaxed);
		previous = finished;
		update_link_rate(finished);
		if (progressed)
			continue;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

void
engram_worker_main(Datum arg)
{
	worker_index = DatumGetInt32(arg);
	guarded(worker_main);
}
