// Pressure: how far ingest runs ahead of the pipeline, as a level clients can
// act on. Pure arithmetic over numbers the glue reads from shared memory, so
// the rules are unit-tested without a server.
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
	double fill;            // 0..1, share of the pipeline's capacity in use
	std::int32_t retry_after_ms;
	std::int32_t suggested_batch;
};

const char *pressure_level_name(PressureLevel level) noexcept;

// Thresholds that are out of order are applied as if sorted, so a mistaken
// configuration degrades to fewer levels instead of skipping the policy.
PressureLevel pressure_level(double fill, PressureThresholds t) noexcept;

// The work ahead of the pipeline, stage by stage, each in the unit of the
// rate the workers were measured to clear it at (0 = not measured yet).
struct Backlog {
	double ring_cells;          // committed records waiting in the ring
	double drain_cells_per_s;   // how fast the workers store them
	double unlinked;            // vectors stored but not linked yet
	double linked_per_s;        // how fast the link threads link them
};

// The retry hint is the time the workers need to bring the fill back to the
// warning threshold: the time to clear the whole backlog (both stages in
// turn) times the share of it above warning. With a rate unknown where work
// is waiting, it falls back to `fallback_ms`.
PressureReport assess_pressure(double fill, PressureThresholds t, const Backlog &backlog,
							   std::int32_t fallback_ms) noexcept;

} // namespace engram::core
