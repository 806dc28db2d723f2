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

// `backlog` and `drain_per_second` share a unit (ring cells); with no drain
// measured yet the hint falls back to `fallback_ms`.
PressureReport assess_pressure(double fill, PressureThresholds t, double backlog_above_warning,
							   double drain_per_second, std::int32_t fallback_ms) noexcept;

} // namespace engram::core
