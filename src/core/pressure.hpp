// Pressure: how far ingest runs ahead of the pipeline, as a level clients can
// act on, and the fair-share rule that decides whose commits wait. Pure
// arithmetic over numbers the glue reads from shared memory, so the rules are
// unit-tested without a server.
#pragma once

#include <cstdint>

#include "core/no_postgres.hpp"

namespace engram::core {

enum class PressureLevel : std::uint8_t { normal, warning, critical, overloaded };

struct PressureThresholds {
	double warning;
	double critical;
	double overloaded;
};

struct PressureReport {
	PressureLevel level;
	double fill; // 0..1, share of the pipeline's capacity in use
	std::int32_t retry_after_ms;
	std::int32_t suggested_batch;
};

const char *pressure_level_name(PressureLevel level) noexcept;

// Backlog is measured in bytes of ring records: a row of `dim` dimensions
// counts what it takes in a vectors record, whether it still waits in the
// ring or waits in a graph to be linked.
inline constexpr std::uint64_t
row_backlog_bytes(std::uint32_t dim) noexcept
{
	// Vector, id, observation time, confidence and token count; a row's
	// metadata tokens (8 bytes each) come on top of this.
	return std::uint64_t{dim} * 4 + 24;
}

// The pipeline as the levels and admission see it.
struct PipelineState {
	double capacity;             // backlog bytes that make the fill 1: the ring's size
	double ring_used;            // ring bytes in use (records of any state, padding)
	double backlog;              // every space's rows accepted but not linked yet, in bytes
	double memory_fill;          // share of the indexes' memory (engram.memory_limit) in use
	std::uint32_t active_spaces; // spaces with backlog
};

// Memory holds every space's vectors and does not drain by waiting, so its
// share applies to every space alike.
double memory_share(const PipelineState &p) noexcept;
// The backlog's share of the capacity (or the ring's, if that is larger).
double backlog_share(const PipelineState &p) noexcept;
// The whole pipeline: the larger of the two shares, within 0..1.
double pipeline_fill(const PipelineState &p) noexcept;
// What a commit into one space meets. Each space with backlog is entitled to
// an equal share of the capacity (capacity / active spaces); a space's fill is
// the pipeline's backlog share, but no more than its own backlog against its
// entitlement, and at least the memory share. So while the pipeline is
// overloaded, only the spaces holding more than their share are: one space's
// bulk load holds back that space's commits, not the others'.
double space_fill(const PipelineState &p, double space_backlog) noexcept;

// Thresholds that are out of order are applied as if sorted, so a mistaken
// configuration degrades to fewer levels instead of skipping the policy.
PressureLevel pressure_level(double fill, PressureThresholds t) noexcept;

// The work ahead of the pipeline, stage by stage, each in the unit of the
// rate the workers were measured to clear it at (0 = not measured yet).
struct Backlog {
	double ring_cells;        // committed records waiting in the ring
	double drain_cells_per_s; // how fast the workers store them
	double unlinked;          // vectors stored but not linked yet
	double linked_per_s;      // how fast the link threads link them
};

// The retry hint is the time the workers need to bring the fill back to the
// warning threshold: the time to clear the whole backlog (both stages in
// turn) times the share of it above warning. With a rate unknown where work
// is waiting, it falls back to `fallback_ms`.
PressureReport assess_pressure(double fill, PressureThresholds t, const Backlog &backlog,
							   std::int32_t fallback_ms) noexcept;

} // namespace engram::core
