// LatencyHistogram: a fixed-bucket histogram of durations that many
// processes add to at once, for the Prometheus latency metrics
// (pg/metrics.hpp). It lives in shared memory as plain atomics: zeroed bytes
// are an empty histogram, and recording is a bucket search over a dozen
// constants and two relaxed additions, so timing every recall costs nothing
// measurable.
//
// The buckets' upper bounds are fixed (k_latency_bounds_us) so every
// histogram of engram has the same `le` labels. Counts are kept per bucket;
// a snapshot makes them cumulative and takes the total from them, so its
// +Inf bucket always equals its count even while others record. The sum is
// read apart from the buckets and may include an observation they do not
// yet show (or miss one they do), which Prometheus tolerates.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/no_postgres.hpp"

namespace engram::core {

// Upper bounds in microseconds: 100 us to 10 s, about three per decade.
inline constexpr std::array<std::uint64_t, 16> k_latency_bounds_us = {100,       250,       500,       1'000,
																	  2'500,     5'000,     10'000,    25'000,
																	  50'000,    100'000,   250'000,   500'000,
																	  1'000'000, 2'500'000, 5'000'000, 10'000'000};
// One count per bound, and the last for what lies above them all (+Inf).
inline constexpr std::size_t k_latency_buckets = k_latency_bounds_us.size() + 1;

struct LatencySnapshot {
	std::array<std::uint64_t, k_latency_buckets> cumulative; // observations <= each bound; the last is the count
	std::uint64_t sum_us;
	std::uint64_t count() const noexcept { return cumulative.back(); }
};

struct LatencyHistogram {
	std::array<std::atomic<std::uint64_t>, k_latency_buckets> counts;
	std::atomic<std::uint64_t> sum_us;

	// Records `weight` observations of `micros` each (a batch of rows that
	// all waited as long).
	void observe(std::uint64_t micros, std::uint64_t weight = 1) noexcept;
	LatencySnapshot snapshot() const noexcept;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// The bucket an observation of `micros` falls in: the first bound it does not exceed.
std::size_t latency_bucket(std::uint64_t micros) noexcept;

} // namespace engram::core
