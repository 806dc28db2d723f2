// Recording into and reading a LatencyHistogram (see latency_histogram.hpp).
#include "core/latency_histogram.hpp"

namespace engram::core {

std::size_t
latency_bucket(std::uint64_t micros) noexcept
{
	std::size_t i = 0;
	while (i < k_latency_bounds_us.size() && micros > k_latency_bounds_us[i])
		++i;
	return i;
}

void
LatencyHistogram::observe(std::uint64_t micros, std::uint64_t weight) noexcept
{
	if (weight == 0)
		return;
	counts[latency_bucket(micros)].fetch_add(weight, std::memory_order_relaxed);
	sum_us.fetch_add(micros * weight, std::memory_order_relaxed);
}

LatencySnapshot
LatencyHistogram::snapshot() const noexcept
{
	LatencySnapshot s{};
	std::uint64_t running = 0;
	for (std::size_t i = 0; i < k_latency_buckets; ++i) {
		running += counts[i].load(std::memory_order_relaxed);
		s.cumulative[i] = running;
	}
	s.sum_us = sum_us.load(std::memory_order_relaxed);
	return s;
}

} // namespace engram::core
