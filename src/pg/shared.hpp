// engram's shared memory: one segment from PostgreSQL's main shared memory,
// requested at preload, holding a header, the ring and the arena for the
// spaces' stores. Everything inside is addressed by offsets from the header,
// and every field other processes read concurrently is a lock-free atomic.
//
// Lock order: the directory LWLock, then (inside core code) the arena's spin
// lock. The ring never needs either.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/arena.hpp"
#include "core/ring.hpp"
#include "core/vector_store.hpp"

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
	std::uint64_t store_offset; // VectorStoreHeader in the arena
};

struct WorkerSlot {
	std::atomic<std::int32_t> pid;
	std::atomic<std::uint32_t> state;
	std::atomic<std::int32_t> pgprocno;
	std::atomic<std::uint32_t> spaces_served;
	std::atomic<std::uint64_t> stored_total;
	std::atomic<std::uint64_t> busy_us;
	std::atomic<std::uint64_t> alive_us;
};

struct EngramShared {
	std::uint64_t magic;
	std::uint64_t ring_offset;
	std::uint64_t arena_offset;
	std::uint64_t arena_bytes;
	std::atomic<std::uint32_t> load_state;
	std::atomic<std::int32_t> loader_pid;
	std::atomic<std::uint64_t> observations_published;
	std::atomic<std::uint64_t> observations_stored;
	std::atomic<std::uint64_t> drain_cells_per_second;
	// Set while a worker holds a record back because its space cannot grow.
	std::atomic<std::uint32_t> memory_stalled;
	WorkerSlot workers[64];
	SpaceSlot spaces[k_engram_max_spaces];
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
struct LWLock *shared_directory_lock(void);

// Directory of spaces (caller holds the directory lock: shared to find,
// exclusive to install or free).
SpaceSlot *directory_find(std::int32_t space_id);
SpaceSlot *directory_install(std::int32_t space_id, std::uint32_t dim);
void directory_free(SpaceSlot *slot);
engram::core::VectorStore directory_store(const SpaceSlot *slot);

// What became of the drop_space marked on a slot (no lock needed).
enum class DropOutcome { none, in_progress, committed, aborted };
DropOutcome directory_drop_outcome(const SpaceSlot *slot);

// Wakes the workers' latches so they drain now rather than at their next poll.
void shared_wake_workers(void);
