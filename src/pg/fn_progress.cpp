// engram._progress(), behind the view engram.progress: a row per long
// operation in flight (progress.hpp). The rows come from two places: the
// progress slots of the workers and the writer (a start-up load, a rebuild
// reading its rows, a compaction, a graph file write), and the space
// directory for rebuilds whose rows are read and whose replacement graph is
// being linked, by every worker's link threads, until a worker makes it
// current. The view adds the spaces' names.
#include <algorithm>

#include "core/ring.hpp"
#include "pg/instance.hpp"
#include "pg/progress.hpp"
#include "pg/shared.hpp"

#include "pg/postgres.hpp"

namespace {

constexpr int k_columns = 7;

// A row as the function returns it; space_id 0 and unknown totals are nulls.
void
put_row(ReturnSetInfo *rsinfo, const ProgressRow &row)
{
	Datum values[k_columns] = {Int32GetDatum(row.pid),
							   Int32GetDatum(row.space_id),
							   CStringGetTextDatum(progress_operation_name(row.operation)),
							   CStringGetTextDatum(progress_phase_name(row.phase)),
							   Int64GetDatum(static_cast<std::int64_t>(row.rows_done)),
							   Int64GetDatum(static_cast<std::int64_t>(row.rows_total)),
							   TimestampTzGetDatum(row.started_at)};
	bool nulls[k_columns] = {false, row.space_id == 0, false, false, false, row.rows_total == k_progress_unknown,
							 false};
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

// The rebuild of `slot` while its replacement graph is linked: false if it
// is not at that stage (or has just finished).
bool
linking_rebuild(SpaceSlot &slot, ProgressRow &row)
{
	if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE ||
		slot.rebuild_requested.load(std::memory_order_acquire) != 2)
		return false;
	engram::core::IndexSlot &index = directory_index(&slot);
	const unsigned current = index.current.load(std::memory_order_acquire);
	engram::core::GraphPin pin(index, 1 - current);
	// Made current meanwhile: the graph pinned may be the one it replaced.
	if (!pin || index.current.load(std::memory_order_acquire) != current)
		return false;
	const engram::core::HnswGraph graph = pinned_graph(pin);
	row.operation = PROGRESS_REBUILD;
	row.phase = PHASE_LINKING;
	row.pid = slot.rebuild_started_by.load(std::memory_order_relaxed);
	row.space_id = slot.space_id;
	row.started_at = slot.rebuild_started_at.load(std::memory_order_relaxed);
	row.rows_total = graph.size();
	row.rows_done = std::min(graph.linked_count(), row.rows_total);
	pin.release();
	return slot.rebuild_requested.load(std::memory_order_acquire) == 2;
}

} // namespace

// Revoked from PUBLIC and granted to pg_monitor, like engram.progress.
ENGRAM_FUNCTION(engram_progress)
{
	EngramShared *s = shared_require();
	instance_require();
	InitMaterializedSRF(fcinfo, 0);
	auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	for (const ProgressSlot &slot : s->progress.slots) {
		ProgressRow row;
		// A process killed outright (SIGKILL restarts the server) leaves no
		// row anyway; one that exited otherwise emptied its slot.
		if (progress_read(slot, row) && engram::core::process_alive(static_cast<std::uint32_t>(row.pid)))
			put_row(rsinfo, row);
	}
	directory_each_owing(DUTY_REBUILD, [rsinfo](SpaceSlot &slot) {
		ProgressRow row;
		if (linking_rebuild(slot, row))
			put_row(rsinfo, row);
	});
	return static_cast<Datum>(0);
}
