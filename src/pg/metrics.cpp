// Recording the metrics of pg/metrics.hpp into shared memory.
#include "pg/metrics.hpp"

#include <ctime>

#include "pg/shared.hpp"

namespace {

// Stamps count units of 100 us and wrap after about five days: a wait is the
// difference modulo 2^32, right for any record consumed within that time.
constexpr std::uint64_t k_stamp_unit_us = 100;

MetricCounters *
counters(void)
{
	EngramShared *s = shared_state();
	return s == nullptr ? nullptr : &s->metrics;
}

} // namespace

const char *
refusal_cause_name(RefusalCause cause)
{
	switch (cause) {
	case REFUSED_MEMORY:
		return "memory_limit";
	case REFUSED_SPACE_SHARE:
		return "space_share";
	case REFUSED_RING:
		return "ring_full";
	case REFUSED_SPACES:
		return "too_many_spaces";
	case REFUSED_TOO_LARGE:
		return "too_large";
	case REFUSED_QUARANTINED:
		return "quarantined";
	case REFUSED_STATEMENT_TIMEOUT:
		return "statement_timeout";
	default:
		return "unknown";
	}
}

std::uint64_t
metrics_clock_us(void)
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
}

void
metrics_count_committed(std::uint64_t observations)
{
	if (MetricCounters *m = counters(); m != nullptr && observations > 0)
		m->observations_committed.fetch_add(observations, std::memory_order_relaxed);
}

void
metrics_count_backpressure(void)
{
	if (MetricCounters *m = counters(); m != nullptr)
		m->backpressure_activations.fetch_add(1, std::memory_order_relaxed);
}

void
metrics_count_refusal(RefusalCause cause)
{
	if (MetricCounters *m = counters(); m != nullptr && cause < REFUSAL_CAUSES)
		m->commits_refused[cause].fetch_add(1, std::memory_order_relaxed);
}

std::uint32_t
metrics_commit_stamp(void)
{
	// 0 means "no stamp" to the workers, so a commit at that instant says 1.
	const auto stamp = static_cast<std::uint32_t>(metrics_clock_us() / k_stamp_unit_us);
	return stamp == 0 ? 1 : stamp;
}

void
metrics_observe_stored(std::uint32_t stamp, std::uint64_t rows)
{
	MetricCounters *m = counters();
	if (m == nullptr || stamp == 0 || rows == 0)
		return;
	const auto now = static_cast<std::uint32_t>(metrics_clock_us() / k_stamp_unit_us);
	const std::uint32_t waited = now - stamp; // modulo 2^32
	m->observation_latency.observe(static_cast<std::uint64_t>(waited) * k_stamp_unit_us, rows);
}

void
metrics_observe_recall(std::uint64_t started_us)
{
	if (MetricCounters *m = counters(); m != nullptr)
		m->recall_latency.observe(metrics_clock_us() - started_us);
}
