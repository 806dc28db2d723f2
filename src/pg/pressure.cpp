// Pressure and admission, the glue around core/pressure and
// core/space_backlog.
//
// The pipeline's backlog is everything accepted but not linked yet, in bytes
// of ring records: the rows of every ring record (an id-range record counts
// its rows, not its few bytes), plus every stored-but-unlinked vector at the
// size of its record (it is still work ahead, and the exact scan every recall
// makes over it grows with it). The fill is the larger of the backlog against
// the ring's capacity and the arena's share in use. A space that cannot grow
// is quarantined (quarantine.hpp) rather than holding the ring back, so
// memory counts here only through the arena's fill.
//
// Admission is fair between spaces (core/pressure.hpp, space_fill): a commit
// waits, or is refused, only if a space it writes to holds more than its share
// of the capacity while the pipeline is overloaded, or if memory is full. The
// commit path reads counters only: the spaces' backlog is kept by the
// committing backends and the workers (core/space_backlog.hpp), and the
// workers measure the graphs' unlinked rows every few tens of milliseconds
// (the census) instead of every commit walking every space.
//
// engram.pressure() and engram.pressure(space) measure the graphs now, so
// they show the pipeline as it is, with the same rule.
#include "pg/pressure.hpp"

#include <algorithm>

#include "core/observation_batch.hpp"
#include "pg/guc.hpp"
#include "pg/shared.hpp"

#include "pg/postgres.hpp"

namespace {

constexpr std::int32_t k_retry_fallback_ms = 100;
constexpr int k_census_interval_ms = 50;

struct Unlinked {
	std::uint64_t rows;
	std::uint64_t bytes;
};

// A space's vectors stored in its graphs (both, while a rebuild runs) and not linked yet.
Unlinked
space_unlinked(engram::core::IndexSlot &index)
{
	Unlinked total{0, 0};
	for (unsigned which = 0; which < 2; ++which) {
		if (index.graphs[which].load(std::memory_order_relaxed) == 0)
			continue;
		const engram::core::GraphPin pin(index, which);
		if (!pin)
			continue;
		const engram::core::HnswGraph graph = pinned_graph(pin);
		const std::uint64_t size = graph.size();
		const std::uint64_t unlinked = size - std::min(graph.linked_count(), size);
		total.rows += unlinked;
		total.bytes += unlinked * engram::core::row_backlog_bytes(graph.dim());
	}
	return total;
}

engram::core::PressureThresholds
thresholds(void)
{
	return {engram_pressure_warning, engram_pressure_critical, engram_pressure_overloaded};
}

// Ring and memory as they are; the backlog from the spaces' counters, with
// their unlinked part as the workers' last census.
engram::core::PipelineState
pipeline_state(void)
{
	const engram::core::Ring ring = shared_ring();
	const engram::core::Arena arena = shared_arena();
	const engram::core::SpaceBacklog backlog = shared_backlog();
	constexpr double cell = engram::core::k_ring_cell_bytes;
	return engram::core::PipelineState{
		static_cast<double>(ring.capacity_cells()) * cell, static_cast<double>(ring.used_cells()) * cell,
		static_cast<double>(backlog.queued_bytes() + backlog.unlinked_bytes()),
		static_cast<double>(arena.used_bytes()) / static_cast<double>(arena.capacity_bytes()), backlog.active_spaces()};
}

double
link_rate(void)
{
	double linked_per_s = 0;
	for (const WorkerSlot &w : shared_state()->workers)
		linked_per_s += static_cast<double>(w.linked_per_second.load(std::memory_order_relaxed));
	return linked_per_s;
}

// The retry hint for a backlog: records waiting in the ring (at most what the
// ring holds) at the measured drain rate, then unlinked vectors at `linked_per_s`.
engram::core::PressureReport
report(double fill, double queued_bytes, double unlinked_rows, double linked_per_s)
{
	const double ring_cells = std::min(queued_bytes, pipeline_state().ring_used) / engram::core::k_ring_cell_bytes;
	const engram::core::Backlog backlog{
		ring_cells, static_cast<double>(shared_state()->drain_cells_per_second.load(std::memory_order_relaxed)),
		unlinked_rows, linked_per_s};
	return engram::core::assess_pressure(fill, thresholds(), backlog, k_retry_fallback_ms);
}

} // namespace

UnlinkedVectors
unlinked_vectors(void)
{
	UnlinkedVectors total{0, 0};
	directory_each_owing(DUTY_LINK, [&total](const SpaceSlot &slot) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE)
			return;
		const Unlinked u = space_unlinked(directory_index(&slot));
		total.count += u.rows;
		total.ring_bytes += u.bytes;
	});
	return total;
}

engram::core::PressureReport
pressure_now(void)
{
	const engram::core::SpaceBacklog backlog = shared_backlog();
	const UnlinkedVectors unlinked = unlinked_vectors();
	engram::core::PipelineState pipeline = pipeline_state();
	pipeline.backlog = static_cast<double>(backlog.queued_bytes() + unlinked.ring_bytes);
	return report(engram::core::pipeline_fill(pipeline), static_cast<double>(backlog.queued_bytes()),
				  static_cast<double>(unlinked.count), link_rate());
}

SpacePressure
space_pressure_now(std::int32_t space_id)
{
	const engram::core::SpaceBacklog backlog = shared_backlog();
	const engram::core::SpaceLoad load = backlog.space(space_id);
	Unlinked own{0, 0};
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	if (const SpaceSlot *slot = directory_find(space_id))
		own = space_unlinked(directory_index(slot));
	LWLockRelease(shared_directory_lock());
	const UnlinkedVectors unlinked = unlinked_vectors();
	engram::core::PipelineState pipeline = pipeline_state();
	pipeline.backlog = static_cast<double>(backlog.queued_bytes() + unlinked.ring_bytes);
	const double queued_bytes = static_cast<double>(load.queued_rows * engram::core::row_backlog_bytes(load.dim));
	const double fill = engram::core::space_fill(pipeline, queued_bytes + static_cast<double>(own.bytes));
	const double share_of_linking = link_rate() / std::max<std::uint32_t>(pipeline.active_spaces, 1);
	return SpacePressure{report(fill, queued_bytes, static_cast<double>(own.rows), share_of_linking),
						 load.queued_rows + own.rows};
}

engram::core::AdmitVerdict
pressure_admit(std::span<const engram::core::BacklogDemand> demands)
{
	return shared_backlog().admit(demands, pipeline_state(), engram_pressure_overloaded);
}

void
pressure_withdraw(std::span<const engram::core::BacklogDemand> demands)
{
	shared_backlog().withdraw(demands);
}

engram::core::PressureReport
pressure_refusal_report(const engram::core::AdmitVerdict &verdict)
{
	if (verdict.status != engram::core::AdmitStatus::over_share)
		return report(engram::core::pipeline_fill(verdict.pipeline),
					  static_cast<double>(shared_backlog().queued_bytes()),
					  static_cast<double>(shared_backlog().unlinked_rows()), link_rate());
	const engram::core::SpaceLoad load = shared_backlog().space(verdict.space_id);
	return report(verdict.space_fill, static_cast<double>(load.queued_rows * engram::core::row_backlog_bytes(load.dim)),
				  static_cast<double>(load.unlinked_rows),
				  link_rate() / std::max<std::uint32_t>(verdict.pipeline.active_spaces, 1));
}

void
backlog_record_consumed(const engram::core::RecordView &record, std::int64_t stored)
{
	const std::optional<engram::core::BatchView> batch = engram::core::parse_batch(record.payload);
	if (!batch)
		return;
	shared_backlog().consumed(batch->header.space_id, batch->header.dim, engram::core::observation_count(*batch),
							  static_cast<std::uint64_t>(std::max<std::int64_t>(stored, 0)));
}

void
backlog_census_if_due(void)
{
	EngramShared *s = shared_state();
	const TimestampTz now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(s->backlog_census_at.load(std::memory_order_relaxed), now, k_census_interval_ms))
		return;
	s->backlog_census_at.store(now, std::memory_order_relaxed);
	// Main thread only; sized once, like the directory.
	static engram::core::CensusRow *rows = static_cast<engram::core::CensusRow *>(
		MemoryContextAlloc(TopMemoryContext, sizeof(engram::core::CensusRow) * directory_capacity()));
	// The census also clears the link duty of the spaces it finds all linked.
	std::size_t n = 0;
	auto visit = [&n](const SpaceSlot &slot) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE)
			return;
		const Unlinked u = space_unlinked(directory_index(&slot));
		if (u.rows > 0)
			rows[n++] = engram::core::CensusRow{slot.space_id, slot.dim, u.rows};
	};
	auto owed = [](const SpaceSlot &slot) {
		return slot.state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE &&
			   space_unlinked(directory_index(&slot)).rows > 0;
	};
	directory_visit_owing(DUTY_LINK, visit, owed);
	shared_backlog().census(std::span(rows, n));
}
