// Progress of engram's long operations, for the view engram.progress (like
// PostgreSQL's pg_stat_progress_* views): a start-up load, the reading of a
// rebuild, a compaction and a graph file write each show what they have done
// while they run.
//
// Where. One slot per process that runs such operations, in shared memory
// (EngramShared::progress): the workers' slots first (by worker index), then
// the writer's. A process runs one of these operations at a time on its main
// thread, so its slot is its own and needs no claiming: it fills the slot at
// the start (progress_begin), moves the counters as it goes and empties the
// slot at the end (progress_end). A process that stops half way, by an error
// or a signal, empties it on its way out (a before_shmem_exit callback that
// progress_attach registers), and readers skip a slot whose process is gone,
// so no row outlives its operation.
//
// A rebuild outlives the worker's reading: once its rows are read, every
// worker's link threads link the replacement graph, and any worker finishes
// it. That phase is read from the space directory instead (the replacement
// graph's size and linked nodes, and when and by whom the rebuild was
// started, SpaceSlot::rebuild_started_at and _by), so it too ends exactly
// when the rebuild does (fn_progress.cpp).
//
// Cost. The description (operation, phase, space, start) changes a few
// times per operation under a sequence number, which readers check; the row
// counters are single relaxed atomics, stored once per batch of rows.
#pragma once

#include <atomic>
#include <cstdint>

#include "pg/guc.hpp"

// What engram.progress calls the operations and their phases
// (progress_operation_name, progress_phase_name).
enum ProgressOperation : std::uint32_t {
	PROGRESS_NONE = 0,
	PROGRESS_LOAD,       // the start-up load of every space
	PROGRESS_REBUILD,    // engram.rebuild() of one space
	PROGRESS_COMPACTION, // erasing forgotten nodes by a copy (worker_compact.cpp)
	PROGRESS_FILE_WRITE, // the writer writing a space's graph file
};

enum ProgressPhase : std::uint32_t {
	PHASE_READING_FILE = 1, // load: the space's graph file
	PHASE_READING_ROWS,     // load, rebuild: the space's rows of engram.observations
	PHASE_LINKING,          // rebuild: the replacement graph is linked
	PHASE_COPYING,          // compaction: the nodes kept are copied
	PHASE_WRITING,          // file write: the graph is written to the file
	PHASE_SYNCING,          // file write: the file is synced and renamed
};

// rows_total when it is not known (shown as null).
inline constexpr std::uint64_t k_progress_unknown = UINT64_MAX;

struct ProgressSlot {
	// Odd while the description below changes.
	std::atomic<std::uint32_t> sequence;
	std::atomic<std::uint32_t> operation; // ProgressOperation; PROGRESS_NONE: empty
	std::atomic<std::uint32_t> phase;     // ProgressPhase
	std::atomic<std::int32_t> pid;
	std::atomic<std::int32_t> space_id;
	std::atomic<std::int64_t> started_at; // TimestampTz
	std::atomic<std::uint64_t> rows_done;
	std::atomic<std::uint64_t> rows_total;
};

// The workers' slots (one per EngramShared::workers entry), then the writer's.
inline constexpr int k_progress_writer_slot = k_engram_max_workers;
inline constexpr int k_progress_slots = k_progress_writer_slot + 1;

struct ProgressBoard {
	ProgressSlot slots[k_progress_slots];
};

// This process reports in slot `index` from now on, and empties it when it exits.
void progress_attach(int index);

// The calling process (attached) starts an operation on a space (0: none
// yet), in `phase`; returns the start time it shows (TimestampTz).
std::int64_t progress_begin(ProgressOperation operation, std::int32_t space_id, ProgressPhase phase,
							std::uint64_t rows_total);
// It moves on to `phase`, with its rows done back at 0.
void progress_phase(ProgressPhase phase, std::uint64_t rows_total);
// It moves on to another space (the start-up load goes through them all).
void progress_next_space(std::int32_t space_id, ProgressPhase phase, std::uint64_t rows_total);
// Its rows done so far (a relaxed store: call it once per batch).
void progress_rows(std::uint64_t done);
// The counter progress_rows stores to, for core code to store to itself;
// null if the process has no slot (core code takes null as "no report").
std::atomic<std::uint64_t> *progress_rows_counter(void);
// Its operation has ended (also when it failed): the row goes.
void progress_end(void);

// A consistent copy of a slot, or false if it is empty (or changed under
// every try); for readers.
struct ProgressRow {
	ProgressOperation operation;
	ProgressPhase phase;
	std::int32_t pid;
	std::int32_t space_id;
	std::int64_t started_at;
	std::uint64_t rows_done;
	std::uint64_t rows_total;
};
bool progress_read(const ProgressSlot &slot, ProgressRow &row);

const char *progress_operation_name(ProgressOperation operation);
const char *progress_phase_name(ProgressPhase phase);
