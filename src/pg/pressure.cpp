// Fill is the larger of two shares: the ring holding records not yet stored
// (everything accepted but not yet taken in by the workers) and the arena
// holding the stores. A worker that cannot grow a store holds the ring back,
// so that state counts as full: commits then meet the overload policy instead
// of waiting on a pipeline that cannot move. The retry hint is the time the
// workers need, at their measured drain rate, to bring the ring back to the
// warning threshold.
#include "pg/pressure.hpp"

#include <algorithm>

#include "pg/guc.hpp"
#include "pg/shared.hpp"

#include "pg/postgres.hpp"

engram::core::PressureReport
pressure_now(void)
{
	engram::core::Ring ring = shared_ring();
	const double capacity = static_cast<double>(ring.capacity_cells());
	const double used = static_cast<double>(ring.used_cells());
	const engram::core::PressureThresholds thresholds{engram_pressure_warning, engram_pressure_critical,
													  engram_pressure_overloaded};
	const double drain = static_cast<double>(shared_state()->drain_cells_per_second.load(std::memory_order_relaxed));
	engram::core::Arena arena = shared_arena();
	const double memory_fill = static_cast<double>(arena.used_bytes()) / static_cast<double>(arena.capacity_bytes());
	const bool stalled = shared_state()->memory_stalled.load(std::memory_order_relaxed) != 0;
	const double fill = stalled ? 1.0 : std::max(used / capacity, memory_fill);
	return engram::core::assess_pressure(fill, thresholds, used - engram_pressure_warning * capacity, drain, 100);
}
