// Recording the metrics of pg/metrics.hpp into shared memory.
#include "pg/metrics.hpp"

#include <ctime>

#include "core/commit_stamp.hpp"
#include "pg/guc.hpp"
#include "pg/shared.hpp"

namespace {

MetricCounters *
counters(void)
{
	EngramShared *s = shared_state();
	return s == nullptr ? nullptr : &s->metrics;
}

std::uint64_t
clock_us(void)
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
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
	return engram_track_latency ? engram::core::commit_stamp_now() : 0;
}

void
metrics_observe_stored(std::uint32_t stamp, std::uint64_t rows)
{
	MetricCounters *m = counters();
	if (m == nullptr || stamp == 0 || rows == 0)
		return;
	m->stored_latency.observe(engram::core::stamp_wait_us(stamp, engram::core::commit_stamp_now()), rows);
}

engram::core::LatencyHistogram *
metrics_linked_latency(void)
{
	MetricCounters *m = counters();
	return m == nullptr ? nullptr : &m->linked_latency;
}

std::uint64_t
metrics_recall_start(void)
{
	return engram_track_latency ? clock_us() : 0;
}

void
metrics_observe_recall(std::uint64_t started_us)
{
	if (MetricCounters *m = counters(); m != nullptr && started_us != 0)
		m->recall_latency.observe(clock_us() - started_us);
}
