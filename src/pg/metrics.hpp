// The counters and latency histograms behind engram.metrics() that nothing
// else in shared memory keeps: observations committed, commits held back or
// refused by backpressure (and why), how long committed rows waited for a
// worker to store them, and how long recalls took. They live in the shared
// header (EngramShared::metrics) as lock-free atomics, so they reset only
// when shared memory is laid out afresh: at a server start or a crash
// restart (a counter reset, which Prometheus' rate() and increase() expect).
//
// Recording is a few relaxed atomic additions and, for the latencies, a
// read of the monotonic clock, which is the same for every process of the
// host: commit time travels with the ring records as a 32-bit stamp in
// units of 100 microseconds (core/ring.hpp), so a worker tells how long a
// record waited without a table of times.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/latency_histogram.hpp"

// Why a commit into engram was refused (the `cause` label of
// engram_commits_refused_total).
enum RefusalCause : std::uint32_t {
	REFUSED_MEMORY,            // the indexes fill engram.memory_limit
	REFUSED_SPACE_SHARE,       // a space it writes to is over its fair share of the pipeline
	REFUSED_RING,              // the ring had no room for its records
	REFUSED_SPACES,            // more spaces have work waiting than engram follows at once
	REFUSED_TOO_LARGE,         // it could never fit the ring (more than half of it)
	REFUSED_QUARANTINED,       // a space it writes to is quarantined
	REFUSED_STATEMENT_TIMEOUT, // statement_timeout ran out while it waited for room
	REFUSAL_CAUSES
};

struct MetricCounters {
	std::atomic<std::uint64_t> observations_committed;
	// Commits that found the pipeline holding them back at least once
	// (whether they then waited and got in, or were refused).
	std::atomic<std::uint64_t> backpressure_activations;
	std::atomic<std::uint64_t> commits_refused[REFUSAL_CAUSES];
	// From a commit to a worker storing its rows (weighted by rows).
	engram::core::LatencyHistogram observation_latency;
	engram::core::LatencyHistogram recall_latency;
};

const char *refusal_cause_name(RefusalCause cause);

// Recording (any process; nothing happens when engram was not preloaded).
void metrics_count_committed(std::uint64_t observations);
void metrics_count_backpressure(void);
void metrics_count_refusal(RefusalCause cause);
// The stamp a commit gives its ring records, and the wait of a record with
// that stamp whose `rows` a worker has just stored.
std::uint32_t metrics_commit_stamp(void);
void metrics_observe_stored(std::uint32_t stamp, std::uint64_t rows);
// The monotonic clock in microseconds, and a recall that began at `started_us`.
std::uint64_t metrics_clock_us(void);
void metrics_observe_recall(std::uint64_t started_us);
