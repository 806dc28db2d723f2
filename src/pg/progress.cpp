// Progress slots of the long operations (see progress.hpp).
//
// Each slot has one writer, its process, so the sequence number is a plain
// seqlock: odd while the description changes, readers retry when it was odd
// or moved while they copied.
#include "pg/progress.hpp"

#include <algorithm>

#include "pg/shared.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "storage/ipc.h"
}

namespace {

constexpr int k_read_tries = 8;

int my_index = -1;

ProgressSlot *
my_slot(void)
{
	EngramShared *s = shared_state();
	if (s == nullptr || my_index < 0)
		return nullptr;
	return &s->progress.slots[my_index];
}

// Changes the description of the calling process's slot.
template <typename Change>
void
describe(Change &&change)
{
	ProgressSlot *slot = my_slot();
	if (slot == nullptr)
		return;
	const std::uint32_t sequence = slot->sequence.load(std::memory_order_relaxed);
	slot->sequence.store(sequence + 1, std::memory_order_relaxed);
	std::atomic_thread_fence(std::memory_order_release);
	change(*slot);
	slot->sequence.store(sequence + 2, std::memory_order_release);
}

// A new phase (or space) counts from 0 towards its own total.
void
restart_count(ProgressSlot &slot, ProgressPhase phase, std::uint64_t rows_total)
{
	slot.phase.store(phase, std::memory_order_relaxed);
	slot.rows_done.store(0, std::memory_order_relaxed);
	slot.rows_total.store(rows_total, std::memory_order_relaxed);
}

void
progress_detach(int, Datum)
{
	progress_end();
}

} // namespace

void
progress_attach(int index)
{
	my_index = index;
	progress_end(); // a slot left by a process that was killed
	before_shmem_exit(progress_detach, 0);
}

std::int64_t
progress_begin(ProgressOperation operation, std::int32_t space_id, ProgressPhase phase, std::uint64_t rows_total)
{
	const TimestampTz now = GetCurrentTimestamp();
	describe([&](ProgressSlot &slot) {
		slot.pid.store(MyProcPid, std::memory_order_relaxed);
		slot.space_id.store(space_id, std::memory_order_relaxed);
		slot.started_at.store(now, std::memory_order_relaxed);
		restart_count(slot, phase, rows_total);
		slot.operation.store(operation, std::memory_order_relaxed);
	});
	return now;
}

void
progress_phase(ProgressPhase phase, std::uint64_t rows_total)
{
	describe([&](ProgressSlot &slot) { restart_count(slot, phase, rows_total); });
}

void
progress_next_space(std::int32_t space_id, ProgressPhase phase, std::uint64_t rows_total)
{
	describe([&](ProgressSlot &slot) {
		slot.space_id.store(space_id, std::memory_order_relaxed);
		restart_count(slot, phase, rows_total);
	});
}

void
progress_rows(std::uint64_t done)
{
	if (ProgressSlot *slot = my_slot())
		slot->rows_done.store(done, std::memory_order_relaxed);
}

std::atomic<std::uint64_t> *
progress_rows_counter(void)
{
	ProgressSlot *slot = my_slot();
	return slot != nullptr ? &slot->rows_done : nullptr;
}

void
progress_end(void)
{
	describe([](ProgressSlot &slot) { slot.operation.store(PROGRESS_NONE, std::memory_order_relaxed); });
}

bool
progress_read(const ProgressSlot &slot, ProgressRow &row)
{
	for (int i = 0; i < k_read_tries; ++i) {
		const std::uint32_t before = slot.sequence.load(std::memory_order_acquire);
		if (before % 2 != 0)
			continue;
		row.operation = static_cast<ProgressOperation>(slot.operation.load(std::memory_order_relaxed));
		row.phase = static_cast<ProgressPhase>(slot.phase.load(std::memory_order_relaxed));
		row.pid = slot.pid.load(std::memory_order_relaxed);
		row.space_id = slot.space_id.load(std::memory_order_relaxed);
		row.started_at = slot.started_at.load(std::memory_order_relaxed);
		row.rows_total = slot.rows_total.load(std::memory_order_relaxed);
		// A file write counts the nodes it found once it froze the graph,
		// which ingest may have grown past the total it started with.
		row.rows_done = slot.rows_done.load(std::memory_order_relaxed);
		if (row.rows_total != k_progress_unknown)
			row.rows_done = std::min(row.rows_done, row.rows_total);
		std::atomic_thread_fence(std::memory_order_acquire);
		if (slot.sequence.load(std::memory_order_relaxed) == before)
			return row.operation != PROGRESS_NONE;
	}
	return false;
}

const char *
progress_operation_name(ProgressOperation operation)
{
	switch (operation) {
	case PROGRESS_LOAD:
		return "load";
	case PROGRESS_REBUILD:
		return "rebuild";
	case PROGRESS_COMPACTION:
		return "compaction";
	case PROGRESS_FILE_WRITE:
		return "file write";
	case PROGRESS_NONE:
		break;
	}
	return "none";
}

const char *
progress_phase_name(ProgressPhase phase)
{
	switch (phase) {
	case PHASE_READING_FILE:
		return "reading graph file";
	case PHASE_READING_ROWS:
		return "reading rows";
	case PHASE_LINKING:
		return "linking";
	case PHASE_COPYING:
		return "copying";
	case PHASE_WRITING:
		return "writing";
	case PHASE_SYNCING:
		return "syncing";
	}
	return "unknown";
}
