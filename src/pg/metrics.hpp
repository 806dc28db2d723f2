// The counters and latency histograms behind engram.metrics() that nothing
// else in shared memory keeps: observations committed, commits held back or
// refused by backpressure (and why), how long committed rows waited until a
// worker stored them and until they were linked into their space's graph,
// and how long recalls took. They live in the shared header
// (EngramShared::metrics) as lock-free atomics, so they reset only when
// shared memory is laid out afresh: at a server start or a crash restart (a
// counter reset, which Prometheus' rate() and increase() expect).
//
// Recording is a few relaxed atomic additions and, for the latencies, a
// read of the monotonic clock, which is the same for every process of the
// host: commit time travels with the ring records as a 32-bit stamp
// (core/commit_stamp.hpp), so a worker tells how long a record waited
// without a table of times, and the stamps of stored rows wait in their
// graph until the link threads finish them (core/link_stamps.hpp), which
// record into linked_latency themselves. engram.track_latency = off gives
// commits no stamp and recalls no start time, so nothing of theirs is timed.
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
	// From a commit until a worker stored its rows, and until they were all
	// linked into the graph recalls use (both weighted by rows).
	engram::core::LatencyHistogram stored_latency;
	engram::core::LatencyHistogram linked_latency;
	engram::core::LatencyHistogram recall_latency;
};

const char *refusal_cause_name(RefusalCause cause);

// Recording (any process; nothing happens when engram was not preloaded).
void metrics_count_committed(std::uint64_t observations);
void metrics_count_backpressure(void);
void metrics_count_refusal(RefusalCause cause);
// The stamp a commit gives its ring records (0, none, when
// engram.track_latency is off), and the wait of a record with that stamp
// whose `rows` a worker has just stored.
std::uint32_t metrics_commit_stamp(void);
void metrics_observe_stored(std::uint32_t stamp, std::uint64_t rows);
// Where stamped rows are recorded once linked (nullptr when engram was not
// preloaded): handed to the link threads and to whoever settles stamps.
engram::core::LatencyHistogram *metrics_linked_latency(void);
// When a recall starts (0 when engram.track_latency is off), and the end of
// a recall that began then.
std::uint64_t metrics_recall_start(void);
void metrics_observe_recall(std::uint64_t started_us);
