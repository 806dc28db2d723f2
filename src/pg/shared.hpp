// engram's shared memory: one segment from PostgreSQL's main shared memory,
// requested at preload, holding a header, the ring, the spaces' backlog
// (core/space_backlog.hpp) and the arena for the spaces' graphs. Everything
// inside is addressed by offsets from the header, and every field other
// processes read concurrently is a lock-free atomic.
//
// The directory: spaces[i] names a space and indexes[i] finds its graphs
// (core/index_slot.hpp). A slot changes hands only under the directory
// LWLock held exclusively, and only after its graphs were retired and every
// pin on them dropped, so a process that found a slot under the shared lock
// and pinned a graph can use it after letting the lock go.
//
// Lock order: the directory LWLock, then (inside core code) the arena's spin
// lock. The ring never needs either, and pins are not locks.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/arena.hpp"
#include "core/ring.hpp"
#include "core/hnsw_graph.hpp"
#include "core/index_slot.hpp"
#include "core/space_backlog.hpp"

inline constexpr int k_engram_max_spaces = 1024;

enum SpaceSlotState : std::uint32_t { SPACE_SLOT_FREE = 0, SPACE_SLOT_LIVE = 1 };
enum LoadState : std::uint32_t { LOAD_NEEDED = 0, LOAD_RUNNING = 1, LOAD_DONE = 2 };
enum WorkerState : std::uint32_t { WORKER_STOPPED = 0, WORKER_IDLE, WORKER_LOADING, WORKER_DRAINING, WORKER_WAITING };

struct SpaceSlot {
	std::atomic<std::uint32_t> state;
	std::int32_t space_id;
	std::uint32_t dim;
	// Transaction (possibly a subtransaction) that ran drop_space on it; the
	// worker frees the slot once that transaction is known to have committed.
	std::atomic<std::uint32_t> drop_xid;
	// engram.rebuild() sets rebuild_requested and waits for one of the
	// counters to move; a worker builds the replacement graph meanwhile.
	std::atomic<std::uint32_t> rebuild_requested;
	std::atomic<std::uint32_t> rebuilds_finished;
	std::atomic<std::uint32_t> rebuilds_failed;
};

struct WorkerSlot {
	std::atomic<std::int32_t> pid;
	std::atomic<std::uint32_t> state;
	std::atomic<std::int32_t> pgprocno;
	std::atomic<std::uint64_t> stored_total;
	std::atomic<std::uint64_t> linked_total;
	// Vectors per second this worker's link threads linked, smoothed, over
	// the intervals in which there was something to link.
	std::atomic<std::uint64_t> linked_per_second;
	std::atomic<std::uint64_t> busy_us;
	std::atomic<std::uint64_t> alive_us;
};

struct EngramShared {
	std::uint64_t magic;
	std::uint64_t ring_offset;
	std::uint64_t arena_offset;
	std::uint64_t arena_bytes;
	std::uint64_t backlog_offset;
	// When the workers last measured the spaces' unlinked rows (census).
	std::atomic<std::int64_t> backlog_census_at;
	std::atomic<std::uint32_t> load_state;
	std::atomic<std::int32_t> loader_pid;
	// Generation the start-up load gave the rows it read; no snapshot below it
	// is served, since those rows would be missing from it.
	std::atomic<std::uint64_t> loaded_generation;
	std::atomic<std::uint64_t> observations_published;
	std::atomic<std::uint64_t> observations_stored;
	std::atomic<std::uint64_t> drain_cells_per_second;
	// Set while a worker holds a record back because its space cannot grow.
	std::atomic<std::uint32_t> memory_stalled;
	WorkerSlot workers[64];
	SpaceSlot spaces[k_engram_max_spaces];
	engram::core::IndexSlot indexes[k_engram_max_spaces];
};

void shared_request(void);
void shared_startup(void);

// The segment, or nullptr when engram was not preloaded.
EngramShared *shared_state(void);
// The segment; raises the "must be preloaded" error when there is none.
EngramShared *shared_require(void);
// The error for a library loaded other than through shared_preload_libraries.
[[noreturn]] void shared_report_not_preloaded(void);
engram::core::Ring shared_ring(void);
engram::core::Arena shared_arena(void);
engram::core::SpaceBacklog shared_backlog(void);
struct LWLock *shared_directory_lock(void);

// Directory of spaces (caller holds the directory lock: shared to find,
// exclusive to install).
SpaceSlot *directory_find(std::int32_t space_id);
// Installs a space with an empty graph; nullptr if no slot or no memory is left.
SpaceSlot *directory_install(std::int32_t space_id, const engram::core::HnswConfig &config);
// Retires the space's graphs, waits until no one uses them, frees them and the
// slot. Takes the directory lock itself; the caller must not hold it.
void directory_free(SpaceSlot *slot);
engram::core::IndexSlot &directory_index(const SpaceSlot *slot);
// A graph of a pinned index slot.
engram::core::HnswGraph pinned_graph(const engram::core::GraphPin &pin);
// Retires graphs[which] of the slot, waits for its pins to go, and destroys it.
void directory_destroy_graph(engram::core::IndexSlot &index, unsigned which);

// What became of the drop_space marked on a slot (no lock needed).
enum class DropOutcome { none, in_progress, committed, aborted };
DropOutcome directory_drop_outcome(const SpaceSlot *slot);

// Wakes the workers' latches so they drain now rather than at their next poll.
void shared_wake_workers(void);
