// The engram writer: one background worker that keeps each space's graph
// file (graph_files.hpp) close behind its index in shared memory, so that a
// start or a crash restart loads the files instead of relinking every row.
//
// When. A space whose index changed since its file was written (rows stored,
// nodes linked, or a rebuild that replaced its graph) is written
//   - once engram.persist_interval has passed since its last attempt,
//   - at once when engram.persist_rows rows, and at least a quarter of the
//     rows its file holds, are missing from the file (the quarter keeps the
//     bytes written proportional to the bytes ingested while a space grows),
//   - when engram.checkpoint() asks, and at a clean shutdown (SIGTERM).
// Only ready spaces are written, and only once the start-up load is done,
// since until then the indexes hold part of the table.
//
// How. write_graph_file (core) freezes the graph's linking while it reads it,
// and writes a temporary file that it syncs and renames over the old one;
// appends, recalls and the linking of every other space go on. The graph is
// pinned while it is read and nothing in between can raise an error, so the
// pin is always dropped; a drop, quarantine or rebuild that frees the graph
// waits for that read, not for the sync. A space dropped meanwhile may see
// its file removed (worker.cpp) before the rename puts it back, so the
// writer removes a file it wrote for a space that is gone. The WAL is
// flushed just before each write, so only a row committed asynchronously
// while the file is written can be in a file and lost by a crash; the next
// start refuses such a file (the row is not in the table) and removes it.
// The writer retries a failed write after the interval (10 s at least), and
// at a clean shutdown writes the most out-of-date spaces first for at most
// 30 s.
//
// What a file covers. Every record the ring had published when the write
// began was stored (published_generation), so the file holds every row
// committed at or before that generation, and perhaps some after it. The
// loader uses that bound to keep as_of snapshots exact (worker_load.cpp).
#include "pg/writer.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <span>

#include "core/graph_file.hpp"
#include "pg/graph_files.hpp"
#include "pg/guc.hpp"
#include "pg/observation_rows.hpp"
#include "pg/progress.hpp"
#include "pg/revisions.hpp"
#include "pg/shared.hpp"
#include "pg/worker.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "common/file_perm.h"
}

extern "C" PGDLLEXPORT void engram_writer_main(Datum arg);

namespace {

// How long a failed write waits before the next attempt, at least.
constexpr int k_retry_ms = 10000;
// How long a clean shutdown goes on starting new writes.
constexpr int k_shutdown_budget_ms = 30000;

volatile sig_atomic_t shutdown_requested = false;

// When this writer started: a space never written is due an interval later.
TimestampTz started_at = 0;
// The load (its generation) after which this writer last swept the directory.
std::uint64_t swept_after_load = 0;
bool files_removed = false;

void
handle_sigterm(SIGNAL_ARGS)
{
	const int saved_errno = errno;
	shutdown_requested = true;
	SetLatch(MyLatch);
	errno = saved_errno;
}

void
writer_detach(int, Datum)
{
	if (EngramShared *s = shared_state()) {
		s->writer.pid.store(0, std::memory_order_release);
	}
}

// The loaded spaces of the current installation are what files are written from.
bool
spaces_loaded(void)
{
	const EngramShared *s = shared_state();
	return s->load_state.load(std::memory_order_acquire) == LOAD_DONE &&
		   s->instance.load(std::memory_order_acquire) != 0;
}

enum class Occasion { routine, checkpoint, shutdown };

bool
changed_since_file(const SpaceFileState &file, const engram::core::HnswGraph &graph)
{
	return graph.header_offset() != file.graph.load(std::memory_order_relaxed) ||
		   graph.size() != file.observations.load(std::memory_order_relaxed) ||
		   graph.linked_count() != file.linked.load(std::memory_order_relaxed) ||
		   graph.forgotten_count() != file.forgotten.load(std::memory_order_relaxed);
}

// Rows of the graph its file lacks (all of them when the file is of another graph).
std::uint64_t
rows_missing(const SpaceFileState &file, const engram::core::HnswGraph &graph)
{
	const bool same_graph = graph.header_offset() == file.graph.load(std::memory_order_relaxed);
	const std::uint64_t in_file = same_graph ? file.observations.load(std::memory_order_relaxed) : 0;
	return graph.size() > in_file ? graph.size() - in_file : 0;
}

bool
due(const SpaceFileState &file, const engram::core::HnswGraph &graph, Occasion occasion, TimestampTz now)
{
	if (!changed_since_file(file, graph))
		return false;
	// A compaction erased vectors the file still holds.
	if (occasion != Occasion::routine ||
		file.erase_requested.load(std::memory_order_acquire) != file.erase_written.load(std::memory_order_acquire))
		return true;
	// After a failed write (a full disk) the next attempt waits, whatever the rows say.
	const TimestampTz attempted = file.attempted_at.load(std::memory_order_relaxed);
	if (attempted > file.written_at.load(std::memory_order_relaxed) &&
		!TimestampDifferenceExceeds(attempted, now, std::max(engram_persist_interval_ms, k_retry_ms)))
		return false;
	const std::uint64_t missing = rows_missing(file, graph);
	const std::uint64_t in_file = graph.size() - missing;
	if (engram_persist_rows > 0 && missing >= static_cast<std::uint64_t>(engram_persist_rows) && missing * 4 >= in_file)
		return true;
	const TimestampTz since = std::max<TimestampTz>(file.attempted_at.load(std::memory_order_relaxed), started_at);
	return engram_persist_interval_ms > 0 && TimestampDifferenceExceeds(since, now, engram_persist_interval_ms);
}

std::int64_t
max_label(const engram::core::HnswGraph &graph, std::uint64_t nodes)
{
	std::int64_t most = 0;
	for (std::uint64_t id = 0; id < nodes; ++id)
		most = std::max(most, graph.label(static_cast<std::uint32_t>(id)));
	return most;
}

// What one write did, kept in plain data until it is reported.
struct WriteOutcome {
	bool attempted = false;
	engram::core::GraphFileStatus status = engram::core::GraphFileStatus::ok;
	int os_error = 0;
	std::int32_t space_id = 0;
	std::uint64_t installation = 0;
	char name[k_space_name_bytes] = "";
	std::uint64_t graph = 0, observations = 0, linked = 0, forgotten = 0, generation = 0;
	std::int64_t revision = 0;
	std::uint32_t erase_requested = 0;
};

// Runs step() in a transaction of its own with SPI connected and a snapshot,
// inside a subtransaction so that an error is a message, not a writer exit.
template <typename Step>
bool
in_transaction(Step step)
{
	MemoryContext context = CurrentMemoryContext;
	StartTransactionCommand();
	MemoryContextSwitchTo(context);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	char error[256];
	const bool done = run_in_subtransaction(step, error, sizeof error);
	if (!done)
		ereport(WARNING, (errmsg("engram writer could not use engram.revisions: %s", error)));
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	MemoryContextSwitchTo(context);
	return done;
}

// The revision the file of the space may claim (revisions.hpp): the newest
// one committed now, provided that none is in flight and every committed one
// is stored, read in this order. False when the file would miss one.
bool
file_revision(const SpaceSlot &slot, std::int32_t space_id, std::int64_t *revision)
{
	auto read = [&] { (void) space_revision(space_id, revision); };
	if (!in_transaction(read))
		return false;
	return slot.file.revisions_in_flight.load(std::memory_order_seq_cst) == 0 &&
		   slot.file.revision_generation.load(std::memory_order_acquire) <= shared_ring().published_generation();
}

// The write has read the graph: the pin goes, and the file is synced.
void
graph_read(void *pin) noexcept
{
	static_cast<engram::core::GraphPin *>(pin)->release();
	progress_phase(PHASE_SYNCING, k_progress_unknown);
}

// Pins the current graph of the slot's space if the space is ready (and,
// with same_space, still the space `outcome` names), noting it in `outcome`.
engram::core::GraphPin
pin_ready(SpaceSlot &slot, WriteOutcome &outcome, bool same_space)
{
	engram::core::GraphPin pin;
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	if (slot.state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE &&
		slot.health.load(std::memory_order_acquire) == SPACE_READY &&
		(!same_space || slot.space_id == outcome.space_id)) {
		outcome.space_id = slot.space_id;
		strlcpy(outcome.name, slot.name, sizeof outcome.name);
		pin = engram::core::pin_current(directory_index(&slot));
	}
	LWLockRelease(shared_directory_lock());
	return pin;
}

// Writes the space's file if it is due. What can raise an error (paths,
// strings, the WAL flush) is done between a first pin, which decides, and
// the pin the write holds, so that nothing raises while a pin is held; that
// pin is dropped as soon as the graph has been read, so a drop, quarantine
// or rebuild waits for the read only, not for the file's sync.
WriteOutcome
write_if_due(SpaceSlot &slot, Occasion occasion, TimestampTz now)
{
	WriteOutcome outcome;
	{
		const engram::core::GraphPin pin = pin_ready(slot, outcome, false);
		if (!pin || !due(slot.file, pinned_graph(pin), occasion, now))
			return outcome;
	}
	std::int64_t revision = 0;
	if (!file_revision(slot, outcome.space_id, &revision)) {
		// Tried again at the next round. But a compaction erased vectors the
		// file still holds, and no file can be written while a revision is in
		// flight: the old file goes now (a start without it reads the table).
		if (slot.file.erase_requested.load(std::memory_order_acquire) !=
			slot.file.erase_written.load(std::memory_order_acquire)) {
			graph_file_remove(outcome.space_id);
			directory_forget_file(&slot);
		}
		return outcome;
	}
	// Read before the graph: a compaction after it asks for another write.
	outcome.erase_requested = slot.file.erase_requested.load(std::memory_order_acquire);
	const char *path = graph_file_path(outcome.space_id);
	const char *activity = psprintf("writing the graph file of space \"%s\"", outcome.name);
	// Every row the file will hold was committed before this: with its WAL
	// flushed, no crash (not even of asynchronous commits) leaves the file
	// holding rows the table lost.
	XLogFlush(GetXLogInsertRecPtr());

	engram::core::GraphPin pin = pin_ready(slot, outcome, true);
	if (!pin)
		return outcome;
	const engram::core::HnswGraph graph = pinned_graph(pin);
	engram::core::GraphFileIdentity identity = graph_file_identity(outcome.space_id);
	// Read before the write reads the graph: every row committed at or before
	// it is stored by then.
	identity.max_generation = shared_ring().published_generation();
	identity.snapshot_gap_from = slot.snapshot_gap_from.load(std::memory_order_acquire);
	identity.snapshot_gap_to = slot.snapshot_gap_to.load(std::memory_order_acquire);
	identity.revision = revision;
	pgstat_report_activity(STATE_RUNNING, activity);
	outcome.attempted = true;
	outcome.installation = identity.installation;
	outcome.graph = graph.header_offset();
	outcome.linked = graph.linked_count();
	outcome.forgotten = graph.forgotten_count();
	outcome.observations = graph.size();
	outcome.revision = revision;
	outcome.generation = identity.max_generation;
	identity.max_label = max_label(graph, outcome.observations);
	engram::core::GraphFileWriteOptions options;
	options.mode = static_cast<unsigned>(pg_file_create_mode);
	options.graph_read = graph_read;
	options.context = &pin;
	options.nodes_written = progress_rows_counter();
	progress_begin(PROGRESS_FILE_WRITE, outcome.space_id, PHASE_WRITING, outcome.observations);
	outcome.status = engram::core::write_graph_file(graph, identity, path, &outcome.os_error, options);
	progress_end();
	pgstat_report_activity(STATE_IDLE, "");
	return outcome;
}

// Records a write in the slot, if the slot still holds the space it wrote.
void
record(SpaceSlot &slot, const WriteOutcome &outcome, TimestampTz now)
{
	struct stat st;
	const bool written = outcome.status == engram::core::GraphFileStatus::ok;
	const off_t bytes = written && stat(graph_file_path(outcome.space_id), &st) == 0 ? st.st_size : 0;
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	const bool same_space = slot.state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE &&
							slot.space_id == outcome.space_id &&
							shared_state()->instance.load(std::memory_order_acquire) == outcome.installation;
	if (same_space) {
		SpaceFileState &file = slot.file;
		file.attempted_at.store(now, std::memory_order_relaxed);
		if (written) {
			file.graph.store(outcome.graph, std::memory_order_relaxed);
			file.observations.store(outcome.observations, std::memory_order_relaxed);
			file.linked.store(outcome.linked, std::memory_order_relaxed);
			file.forgotten.store(outcome.forgotten, std::memory_order_relaxed);
			file.erase_written.store(outcome.erase_requested, std::memory_order_release);
			file.generation.store(outcome.generation, std::memory_order_relaxed);
			file.bytes.store(static_cast<std::uint64_t>(bytes), std::memory_order_relaxed);
			file.written_at.store(now, std::memory_order_release);
		}
	}
	LWLockRelease(shared_directory_lock());
	// The space was dropped (or the extension reinstalled) while its file was
	// written: whoever freed the slot may have removed the file before the
	// rename put it back.
	if (written && !same_space) {
		graph_file_remove(outcome.space_id);
		return;
	}
	if (written && outcome.revision > 0) {
		auto prune = [&] { prune_revisions(outcome.space_id, outcome.revision); };
		(void) in_transaction(prune);
	}
	if (written)
		ereport(DEBUG1,
				(errmsg("engram wrote the graph file of space \"%s\": %llu observations, %lld bytes", outcome.name,
						static_cast<unsigned long long>(outcome.observations), static_cast<long long>(bytes))));
	else {
		errno = outcome.os_error;
		ereport(WARNING,
				(errcode_for_file_access(),
				 outcome.os_error != 0 ? errmsg("could not write the graph file of space \"%s\": %s: %m", outcome.name,
												engram::core::to_string(outcome.status))
									   : errmsg("could not write the graph file of space \"%s\": %s", outcome.name,
												engram::core::to_string(outcome.status)),
				 errdetail("The index in shared memory is unaffected; a restart relinks the rows the last file "
						   "lacks."),
				 errhint("Check the free space and permissions of \"%s\". The writer tries again after "
						 "engram.persist_interval (at least 10 s).",
						 graph_file_directory())));
	}
}

// Writes every space that is due; false if a write failed.
bool
write_spaces(Occasion occasion)
{
	if (!graph_file_directory_create())
		return false;
	bool all_written = true;
	for (SpaceSlot &slot : directory_slots()) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE)
			continue;
		const WriteOutcome outcome = write_if_due(slot, occasion, GetCurrentTimestamp());
		if (outcome.attempted) {
			record(slot, outcome, GetCurrentTimestamp());
			all_written = all_written && outcome.status == engram::core::GraphFileStatus::ok;
		}
		CHECK_FOR_INTERRUPTS();
	}
	return all_written;
}

struct Stale {
	std::uint64_t missing;
	SpaceSlot *slot;
};

// At a clean shutdown: the spaces whose files lack the most rows first, and
// none started after k_shutdown_budget_ms, so that a server with many
// changed spaces still stops in time (the rest catch up at the next start).
void
write_spaces_at_shutdown(void)
{
	if (!graph_file_directory_create())
		return;
	const std::span<SpaceSlot> slots = directory_slots();
	auto *stale = static_cast<Stale *>(palloc(sizeof(Stale) * std::max<std::size_t>(slots.size(), 1)));
	std::size_t count = 0;
	for (SpaceSlot &slot : slots) {
		WriteOutcome probe;
		const engram::core::GraphPin pin = pin_ready(slot, probe, false);
		if (pin && changed_since_file(slot.file, pinned_graph(pin)))
			stale[count++] = Stale{rows_missing(slot.file, pinned_graph(pin)), &slot};
	}
	std::sort(stale, stale + count, [](const Stale &a, const Stale &b) { return a.missing > b.missing; });
	const TimestampTz started = GetCurrentTimestamp();
	std::size_t written = 0;
	for (; written < count && !TimestampDifferenceExceeds(started, GetCurrentTimestamp(), k_shutdown_budget_ms);
		 ++written) {
		const WriteOutcome outcome = write_if_due(*stale[written].slot, Occasion::shutdown, GetCurrentTimestamp());
		if (outcome.attempted)
			record(*stale[written].slot, outcome, GetCurrentTimestamp());
	}
	if (written < count)
		ereport(LOG, (errmsg("engram writer left %zu graph files out of date at shutdown", count - written),
					  errdetail("Writing them would have taken longer than %d ms; the next start loads the older "
								"files and reads the rows they lack from engram.observations.",
								k_shutdown_budget_ms)));
}

// engram.persist off: no file stays behind, and the slots say so.
void
remove_files_once(void)
{
	if (files_removed)
		return;
	graph_files_remove_all();
	for (SpaceSlot &slot : directory_slots())
		if (slot.state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE)
			directory_forget_file(&slot);
	files_removed = true;
}

// Without files no revision is needed: they are pruned while engram.persist
// is off, so the table does not grow (a file written later covers them).
void
prune_all_revisions(void)
{
	(void) in_transaction(clear_revisions);
}

void
answer_checkpoints(std::uint64_t ticket, bool written)
{
	WriterSlot &w = shared_state()->writer;
	if (!written)
		w.checkpoint_failed.store(ticket, std::memory_order_release);
	w.checkpoint_done.store(ticket, std::memory_order_release);
}

void
writer_main(void)
{
	pqsignal(SIGTERM, handle_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	before_shmem_exit(writer_detach, 0);
	progress_attach(k_progress_writer_slot);
	WriterSlot &w = shared_state()->writer;
	w.pgprocno.store(MyProc->pgprocno, std::memory_order_relaxed);
	w.pid.store(MyProcPid, std::memory_order_release);
	// A connection, though the writer reads no table, puts it in pg_stat_activity.
	BackgroundWorkerInitializeConnection(engram_database, nullptr, 0);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("engram writer");
	started_at = GetCurrentTimestamp();
	// Paths and messages of one round, freed after it.
	MemoryContext round = AllocSetContextCreate(TopMemoryContext, "engram writer", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(round);
	for (;;) {
		MemoryContextReset(round);
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		const bool loaded = spaces_loaded();
		if (shutdown_requested) {
			if (loaded && engram_persist)
				write_spaces_at_shutdown();
			// Not 0, which would unregister the writer: after a SIGTERM from
			// pg_terminate_backend() the postmaster starts it again.
			proc_exit(1);
		}
		const std::uint64_t ticket = w.checkpoint_requested.load(std::memory_order_acquire);
		const bool asked = ticket > w.checkpoint_done.load(std::memory_order_acquire);
		if (loaded && !engram_persist) {
			remove_files_once();
			prune_all_revisions();
			if (asked)
				answer_checkpoints(ticket, false);
		} else if (loaded) {
			files_removed = false;
			const std::uint64_t load = shared_state()->loaded_generation.load(std::memory_order_acquire);
			if (swept_after_load != load) {
				graph_files_sweep();
				swept_after_load = load;
			}
			const bool written = write_spaces(asked ? Occasion::checkpoint : Occasion::routine);
			if (asked)
				answer_checkpoints(ticket, written);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

} // namespace

void
writer_register(void)
{
	worker_register("engram_writer_main", "engram writer", "engram writer", 0);
}

void
engram_writer_main(Datum)
{
	guarded(writer_main);
}
