// engram's shared memory: one segment from PostgreSQL's main shared memory,
// requested at preload, holding a header, the ring, the spaces' backlog
// (core/space_backlog.hpp) and the arena for the spaces' graphs. Everything
// inside is addressed by offsets from the header, and every field other
// processes read concurrently is a lock-free atomic.
//
// The space directory (directory.hpp) follows the header, sized by
// engram.max_spaces; then come the ring and the arena.
//
// Lock order: the directory LWLock, then (inside core code) the arena's spin
// lock. The ring never needs either, and pins are not locks.
//
// The installation: the directory belongs to one installation of the
// extension (core/instance_id.hpp), named in `instance`. The workers change
// it, holding the ring's consumer token, only after marking the load needed
// and freeing every space of the previous one (worker_instance.cpp); so a
// caller that reads its own installation there (acquire) and then a finished
// load is served from that installation's indexes only (pg/instance.hpp).
#pragma once

#include <atomic>
#include <cstdint>

#include "core/arena.hpp"
#include "core/ring.hpp"
#include "core/space_backlog.hpp"
#include "pg/directory.hpp"
#include "pg/metrics.hpp"
#include "pg/progress.hpp"

enum LoadState : std::uint32_t { LOAD_NEEDED = 0, LOAD_RUNNING = 1, LOAD_DONE = 2 };
enum WorkerState : std::uint32_t { WORKER_STOPPED = 0, WORKER_IDLE, WORKER_LOADING, WORKER_DRAINING, WORKER_WAITING };

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

// The engram writer (writer.hpp) and engram.checkpoint()'s requests to it:
// a caller takes the next ticket and waits until `checkpoint_done` reaches it;
// `checkpoint_failed` is the last ticket whose files could not all be written.
struct WriterSlot {
	std::atomic<std::int32_t> pid;
	std::atomic<std::int32_t> pgprocno;
	std::atomic<std::uint64_t> checkpoint_requested;
	std::atomic<std::uint64_t> checkpoint_done;
	std::atomic<std::uint64_t> checkpoint_failed;
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
	std::atomic<std::uint64_t> drain_cells_per_second;
	// The installation the directory belongs to (InstanceId::packed()), 0 for none.
	std::atomic<std::uint64_t> instance;
	// Set by a backend that found another installation's state here, so that
	// the workers look at the catalog now rather than at their next poll.
	std::atomic<std::uint32_t> instance_check_requested;
	// The id-range record being stored, when a worker stopped half way
	// through it: position + 1 (0: none), and the range and id to go on from
	// (worker_store.cpp).
	std::atomic<std::uint64_t> partial_position;
	std::atomic<std::uint32_t> partial_range;
	std::atomic<std::int64_t> partial_next_id;
	WorkerSlot workers[k_engram_max_workers];
	WriterSlot writer;
	// What engram.metrics() reports beyond the state above (pg/metrics.hpp).
	MetricCounters metrics;
	SpaceDirectory directory;
	// What the long operations in flight have done (pg/progress.hpp).
	ProgressBoard progress;
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

// Wakes the workers' latches so they drain now rather than at their next poll.
void shared_wake_workers(void);
// Wakes the engram writer.
void shared_wake_writer(void);
