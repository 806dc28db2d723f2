#include "core/pressure.hpp"

#include <algorithm>
#include <cmath>

namespace engram::core {

const char *
pressure_level_name(PressureLevel level) noexcept
{
	switch (level) {
	case PressureLevel::normal:
		return "normal";
	case PressureLevel::warning:
		return "warning";
	case PressureLevel::critical:
		return "critical";
	case PressureLevel::overloaded:
		return "overloaded";
	}
	return "normal";
}

PressureLevel
pressure_level(double fill, PressureThresholds t) noexcept
{
	const double overloaded = t.overloaded;
	const double critical = std::min(t.critical, overloaded);
	const double warning = std::min(t.warning, critical);
	if (fill >= overloaded)
		return PressureLevel::overloaded;
	if (fill >= critical)
		return PressureLevel::critical;
	if (fill >= warning)
		return PressureLevel::warning;
	return PressureLevel::normal;
}

double
memory_share(const PipelineState &p) noexcept
{
	return std::clamp(p.memory_fill, 0.0, 1.0);
}

double
backlog_share(const PipelineState &p) noexcept
{
	if (p.capacity <= 0)
		return 1.0;
	return std::clamp(std::max(p.ring_used, p.backlog) / p.capacity, 0.0, 1.0);
}

double
pipeline_fill(const PipelineState &p) noexcept
{
	return std::max(memory_share(p), backlog_share(p));
}

double
space_fill(const PipelineState &p, double space_backlog) noexcept
{
	if (p.capacity <= 0)
		return 1.0;
	const double entitlement = p.capacity / std::max<std::uint32_t>(p.active_spaces, 1);
	const double own = std::clamp(space_backlog / entitlement, 0.0, 1.0);
	return std::max(memory_share(p), std::min(backlog_share(p), own));
}

PressureReport
assess_pressure(double fill, PressureThresholds t, const Backlog &backlog, std::int32_t fallback_ms) noexcept
{
	static constexpr std::int32_t batch_for_level[] = {10, 100, 500, 1000};
	PressureReport r{};
	r.fill = std::clamp(fill, 0.0, 1.0);
	r.level = pressure_level(r.fill, t);
	r.suggested_batch = batch_for_level[static_cast<int>(r.level)];
	if (r.level == PressureLevel::normal) {
		r.retry_after_ms = 0;
		return r;
	}
	const bool ring_unknown = backlog.ring_cells > 0 && backlog.drain_cells_per_s <= 0;
	const bool link_unknown = backlog.unlinked > 0 && backlog.linked_per_s <= 0;
	if (ring_unknown || link_unknown) {
		r.retry_after_ms = fallback_ms;
		return r;
	}
	const double seconds = (backlog.ring_cells > 0 ? backlog.ring_cells / backlog.drain_cells_per_s : 0.0) +
						   (backlog.unlinked > 0 ? backlog.unlinked / backlog.linked_per_s : 0.0);
	const double warning = std::min({t.warning, t.critical, t.overloaded});
	const double share_above_warning = std::max(r.fill - warning, 0.0) / r.fill;
	const double ms = std::round(seconds * share_above_warning * 1000.0);
	r.retry_after_ms = static_cast<std::int32_t>(std::clamp(ms, 1.0, 60000.0));
	return r;
}

} // namespace engram::core
