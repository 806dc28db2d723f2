// The worker pool: engram.workers background workers that move committed
// observations from the ring into the spaces' stores.
//
// Draining. One worker at a time holds the ring's consumer token and drains a
// batch: vector records are copied straight into the store; id-range records
// (bulk transactions) are read back from engram.observations. A record is
// popped only after all of its rows are stored, and its rows are stored only
// if the store could first reserve room for all of them, so a record is
// applied whole or not at all: a worker that fails (out of memory, an SPI
// error, a restart) leaves it in the ring for the next one.
//
// Loading. Shared memory is empty after a server start or a crash restart,
// while the table holds every committed observation. The first worker becomes
// the loader: holding the consumer token, it takes an MVCC snapshot S, notes
// the ring's tail T, and loads every space from the table as seen by S. Each
// transaction visible in S reserved its records before S was taken, hence
// before T; so while draining the records before T the loader skips those
// whose transaction S already saw, and stores the rest. Past T it lets go of
// the token and every worker drains normally. Stores therefore converge to
// exactly the committed rows, with none twice.
//
// Threads: none yet; every PostgreSQL call here runs on the main thread.
#include "pg/worker.hpp"

#include <algorithm>
#include <cstring>

#include "core/observation_batch.hpp"
#include "core/ring.hpp"
#include "core/vector_store.hpp"
#include "pg/guc.hpp"
#include "pg/shared.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "commands/extension.h"
}

extern "C" PGDLLEXPORT void engram_worker_main(Datum arg);

namespace {

constexpr int k_records_per_batch = 512;
constexpr int k_fetch_rows = 2000;

int worker_index = -1;
bool in_transaction = false;

// The loader's snapshot, kept as plain data until the ring head passes the
// tail it noted.
struct LoadFilter {
	bool active;
	std::uint64_t tail_mark;
	TransactionId xmin, xmax;
	TransactionId *xip;
	std::uint32_t xcnt;
};
LoadFilter load_filter;

constexpr int k_served_tracked = 64;
std::int32_t served[k_served_tracked];
int served_count = 0;

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
note_served(std::int32_t space_id)
{
	for (int i = 0; i < served_count; ++i)
		if (served[i] == space_id)
			return;
	if (served_count < k_served_tracked)
		served[served_count++] = space_id;
	my_slot().spaces_served.store(static_cast<std::uint32_t>(served_count), std::memory_order_relaxed);
}

void
worker_detach(int, Datum)
{
	EngramShared *s = shared_state();
	if (s == nullptr || worker_index < 0)
		return;
	shared_ring().release_consumer(static_cast<std::uint32_t>(MyProcPid));
	my_slot().state.store(WORKER_STOPPED, std::memory_order_relaxed);
	my_slot().pid.store(0, std::memory_order_release);
}

void
ensure_transaction(void)
{
	if (in_transaction)
		return;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	in_transaction = true;
}

void
end_transaction(void)
{
	if (!in_transaction)
		return;
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	in_transaction = false;
}

bool
extension_present(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	const bool present = OidIsValid(get_extension_oid("engram", true));
	CommitTransactionCommand();
	return present;
}

// The space's slot, installed from the catalog on first use; nullptr if the
// space no longer exists (its records are then dropped).
SpaceSlot *
slot_for(std::int32_t space_id)
{
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	SpaceSlot *slot = directory_find(space_id);
	LWLockRelease(shared_directory_lock());
	if (slot != nullptr)
		return slot;
	ensure_transaction();
	Datum arg = Int32GetDatum(space_id);
	Oid argtype = INT4OID;
	if (SPI_execute_with_args("SELECT dim FROM engram.space_catalog WHERE space_id = $1", 1, &argtype, &arg, nullptr,
							  false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read engram.space_catalog");
	if (SPI_processed == 0)
		return nullptr;
	bool isnull = false;
	const auto dim = static_cast<std::uint32_t>(
		DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)));
	LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
	slot = directory_install(space_id, dim);
	LWLockRelease(shared_directory_lock());
	if (slot == nullptr)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("no room for the store of space %d", space_id),
						errdetail("All %d space slots are in use or engram.memory_limit is exhausted.",
								  k_engram_max_spaces),
						errhint("Drop unused spaces or raise engram.memory_limit.")));
	return slot;
}

void
warn_memory_exhausted(std::int32_t space_id)
{
	shared_state()->memory_stalled.store(1, std::memory_order_relaxed);
	static TimestampTz last_warning = 0;
	const TimestampTz now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(last_warning, now, 10000))
		return;
	last_warning = now;
	ereport(WARNING, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("space %d cannot grow: engram.memory_limit is exhausted", space_id),
					  errdetail("%zu of %zu bytes are in use; ingest stalls and backpressure will refuse new "
								"observations.",
								shared_arena().used_bytes(), shared_arena().capacity_bytes()),
					  errhint("Raise engram.memory_limit, or drop unused spaces.")));
}

// Rows of the current SPI result (id, embedding, confidence) into the store.
void
append_spi_rows(engram::core::VectorStore &store, std::uint64_t generation)
{
	TupleDesc desc = SPI_tuptable->tupdesc;
	for (std::uint64_t r = 0; r < SPI_processed; ++r) {
		HeapTuple tuple = SPI_tuptable->vals[r];
		bool isnull = false;
		const std::int64_t id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
		ArrayType *embedding = DatumGetArrayTypeP(SPI_getbinval(tuple, desc, 2, &isnull));
		const float confidence = DatumGetFloat4(SPI_getbinval(tuple, desc, 3, &isnull));
		const auto *values = reinterpret_cast<const float *>(ARR_DATA_PTR(embedding));
		store.append(id, generation, confidence, std::span(values, store.dim()));
	}
}

bool
store_id_ranges(const engram::core::BatchView &batch, engram::core::VectorStore &store, std::uint64_t generation)
{
	std::uint64_t rows = 0;
	for (const engram::core::IdRange &r : batch.ranges)
		rows += static_cast<std::uint64_t>(r.last - r.first + 1);
	if (!store.reserve(rows))
		return false;
	ensure_transaction();
	Oid types[3] = {INT4OID, INT8OID, INT8OID};
	for (const engram::core::IdRange &r : batch.ranges) {
		for (std::int64_t from = r.first; from <= r.last; from += k_fetch_rows) {
			Datum args[3] = {Int32GetDatum(batch.header.space_id), Int64GetDatum(from),
							 Int64GetDatum(std::min<std::int64_t>(r.last, from + k_fetch_rows - 1))};
			if (SPI_execute_with_args("SELECT id, embedding, confidence FROM engram.observations "
									  "WHERE space_id = $1 AND id BETWEEN $2 AND $3 ORDER BY id",
									  3, types, args, nullptr, false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read engram.observations");
			append_spi_rows(store, generation);
			SPI_freetuptable(SPI_tuptable);
		}
	}
	return true;
}

bool
visible_to_loader(TransactionId xid)
{
	if (TransactionIdPrecedes(xid, load_filter.xmin))
		return true;
	if (!TransactionIdPrecedes(xid, load_filter.xmax))
		return false;
	for (std::uint32_t i = 0; i < load_filter.xcnt; ++i)
		if (load_filter.xip[i] == xid)
			return false;
	return true;
}

// Stores one ready record whole; false if its space cannot grow.
bool
store_record(const engram::core::RecordView &record)
{
	const std::optional<engram::core::BatchView> batch = engram::core::parse_batch(record.payload);
	if (!batch)
		elog(ERROR, "malformed ring record at position %llu", static_cast<unsigned long long>(record.position));
	if (load_filter.active && record.position < load_filter.tail_mark && visible_to_loader(batch->header.xid))
		return true;
	SpaceSlot *slot = slot_for(batch->header.space_id);
	if (slot == nullptr)
		return true;
	engram::core::VectorStore store = directory_store(slot);
	std::uint64_t stored = 0;
	if (batch->header.kind == engram::core::BatchKind::vectors) {
		if (!store.reserve(batch->header.count)) {
			warn_memory_exhausted(batch->header.space_id);
			return false;
		}
		const std::uint32_t dim = batch->header.dim;
		for (std::uint32_t i = 0; i < batch->header.count; ++i)
			store.append(batch->ids[i], record.generation, batch->confidences[i],
						 batch->vectors.subspan(std::size_t{i} * dim, dim));
		stored = batch->header.count;
	} else {
		const std::uint64_t before = store.size();
		if (!store_id_ranges(*batch, store, record.generation)) {
			warn_memory_exhausted(batch->header.space_id);
			return false;
		}
		stored = store.size() - before;
	}
	note_served(batch->header.space_id);
	shared_state()->memory_stalled.store(0, std::memory_order_relaxed);
	shared_state()->observations_stored.fetch_add(stored, std::memory_order_relaxed);
	my_slot().stored_total.fetch_add(stored, std::memory_order_relaxed);
	return true;
}

// Frees the stores of spaces whose drop has committed.
void
resolve_drops(void)
{
	for (SpaceSlot &slot : shared_state()->spaces) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE)
			continue;
		const DropOutcome outcome = directory_drop_outcome(&slot);
		if (outcome == DropOutcome::committed) {
			LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
			directory_free(&slot);
			LWLockRelease(shared_directory_lock());
		} else if (outcome == DropOutcome::aborted)
			slot.drop_xid.store(InvalidTransactionId, std::memory_order_release);
	}
}

void
finish_load(void)
{
	load_filter.active = false;
	if (load_filter.xip != nullptr)
		pfree(load_filter.xip);
	load_filter.xip = nullptr;
	shared_state()->load_state.store(LOAD_DONE, std::memory_order_release);
	ereport(LOG, (errmsg("engram worker %d finished loading the spaces from engram.observations", worker_index)));
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
	auto &rate = shared_state()->drain_cells_per_second;
	const double measured = static_cast<double>(cells) / elapsed;
	const double previous = static_cast<double>(rate.load(std::memory_order_relaxed));
	const double smoothed = previous == 0 ? measured : 0.8 * previous + 0.2 * measured;
	rate.store(static_cast<std::uint64_t>(smoothed), std::memory_order_relaxed);
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
	int taken = 0;
	while (taken < k_records_per_batch) {
		const engram::core::RecordView record = ring.peek();
		if (load_filter.active && record.position >= load_filter.tail_mark)
			finish_load();
		if (record.status != engram::core::PeekStatus::ready || !store_record(record))
			break;
		ring.pop(record);
		++taken;
	}
	end_transaction();
	ring.advance_published();
	update_drain_rate(ring.head_position() - head_before, started);
	if (!load_filter.active)
		ring.release_consumer(token);
	set_state(WORKER_IDLE);
	return taken > 0;
}

// Loads every space from the table (see the header comment).
void
load_spaces(void)
{
	engram::core::Ring ring = shared_ring();
	set_state(WORKER_LOADING);
	ensure_transaction();
	Snapshot snapshot = GetTransactionSnapshot();
	PushActiveSnapshot(snapshot);
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	load_filter.xmin = snapshot->xmin;
	load_filter.xmax = snapshot->xmax;
	load_filter.xcnt = snapshot->xcnt;
	load_filter.xip = static_cast<TransactionId *>(palloc(sizeof(TransactionId) * std::max<std::uint32_t>(snapshot->xcnt, 1)));
	std::memcpy(load_filter.xip, snapshot->xip, sizeof(TransactionId) * snapshot->xcnt);
	MemoryContextSwitchTo(old);
	load_filter.tail_mark = ring.tail_position();
	ring.seed_generation(GetXLogInsertRecPtr());
	const std::uint64_t generation = ring.last_generation();

	LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
	for (SpaceSlot &slot : shared_state()->spaces)
		if (slot.state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE)
			directory_free(&slot);
	LWLockRelease(shared_directory_lock());

	if (SPI_execute("SELECT space_id FROM engram.space_catalog ORDER BY space_id", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read engram.space_catalog");
	const std::uint64_t spaces = SPI_processed;
	auto *ids = static_cast<std::int32_t *>(palloc(sizeof(std::int32_t) * std::max<std::uint64_t>(spaces, 1)));
	for (std::uint64_t i = 0; i < spaces; ++i) {
		bool isnull = false;
		ids[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	std::uint64_t loaded = 0;
	Oid argtype = INT4OID;
	SPIPlanPtr plan = SPI_prepare("SELECT id, embedding, confidence FROM engram.observations WHERE space_id = $1 ORDER BY id",
								  1, &argtype);
	for (std::uint64_t i = 0; i < spaces; ++i) {
		SpaceSlot *slot = slot_for(ids[i]);
		if (slot == nullptr)
			continue;
		engram::core::VectorStore store = directory_store(slot);
		Datum arg = Int32GetDatum(ids[i]);
		Portal portal = SPI_cursor_open(nullptr, plan, &arg, nullptr, true);
		for (;;) {
			SPI_cursor_fetch(portal, true, k_fetch_rows);
			if (SPI_processed == 0)
				break;
			if (!store.reserve(SPI_processed))
				ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
								errmsg("space %d does not fit in engram.memory_limit", ids[i]),
								errdetail("Loading stopped after %llu observations.",
										  static_cast<unsigned long long>(store.size())),
								errhint("Raise engram.memory_limit and restart the server.")));
			append_spi_rows(store, generation);
			loaded += SPI_processed;
			SPI_freetuptable(SPI_tuptable);
			CHECK_FOR_INTERRUPTS();
		}
		SPI_cursor_close(portal);
		note_served(ids[i]);
	}
	PopActiveSnapshot();
	end_transaction();
	shared_state()->observations_published.fetch_add(loaded, std::memory_order_relaxed);
	shared_state()->observations_stored.fetch_add(loaded, std::memory_order_relaxed);
	my_slot().stored_total.fetch_add(loaded, std::memory_order_relaxed);
	load_filter.active = true;
	ereport(LOG, (errmsg("engram worker %d loaded %llu observations of %llu spaces", worker_index,
						 static_cast<unsigned long long>(loaded), static_cast<unsigned long long>(spaces))));
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
	engram::core::Ring ring = shared_ring();
	const auto token = static_cast<std::uint32_t>(MyProcPid);
	if (!ring.try_acquire_consumer(token))
		return true;
	s->loader_pid.store(MyProcPid, std::memory_order_release);
	s->load_state.store(LOAD_RUNNING, std::memory_order_release);
	load_spaces();
	return false;
}

void
wait_for_extension(void)
{
	bool logged = false;
	while (!extension_present()) {
		shared_state()->load_state.store(LOAD_NEEDED, std::memory_order_release);
		set_state(WORKER_WAITING);
		if (!logged)
			ereport(LOG, (errmsg("engram worker %d is waiting for CREATE EXTENSION engram in database \"%s\"",
								 worker_index, engram_database)));
		logged = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

} // namespace

void
worker_register_pool(void)
{
	for (int i = 0; i < engram_workers; ++i) {
		BackgroundWorker worker;
		std::memset(&worker, 0, sizeof worker);
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 1;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "engram");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "engram_worker_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "engram worker %d", i);
		snprintf(worker.bgw_type, BGW_MAXLEN, "engram worker");
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}
}

void
engram_worker_main(Datum arg)
{
	worker_index = DatumGetInt32(arg);
	// die() exits at the next CHECK_FOR_INTERRUPTS, also inside SPI.
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	// Registered before touching shared state, so an exit always releases it.
	before_shmem_exit(worker_detach, 0);
	WorkerSlot &slot = my_slot();
	slot.pgprocno.store(MyProc->pgprocno, std::memory_order_relaxed);
	slot.pid.store(MyProcPid, std::memory_order_release);
	set_state(WORKER_IDLE);
	BackgroundWorkerInitializeConnection(engram_database, nullptr, 0);
	pgstat_report_appname("engram worker");
	wait_for_extension();
	TimestampTz previous = GetCurrentTimestamp();
	for (;;) {
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		const TimestampTz started = GetCurrentTimestamp();
		bool progressed = false;
		if (!loading_in_progress())
			progressed = drain_once();
		const TimestampTz finished = GetCurrentTimestamp();
		slot.busy_us.fetch_add(static_cast<std::uint64_t>(finished - started), std::memory_order_relaxed);
		slot.alive_us.fetch_add(static_cast<std::uint64_t>(finished - previous), std::memory_order_relaxed);
		previous = finished;
		if (progressed)
			continue;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
