// LatencyHistogram in one thread: where each value lands (bounds are
// inclusive, as Prometheus' `le` says), cumulative snapshots, weights, and a
// zeroed region being an empty histogram.
#include "core/latency_histogram.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <new>

namespace engram::core {
namespace {

TEST(LatencyHistogram, BoundsAreInclusive)
{
	EXPECT_EQ(latency_bucket(0), 0u);
	EXPECT_EQ(latency_bucket(100), 0u);
	EXPECT_EQ(latency_bucket(101), 1u);
	EXPECT_EQ(latency_bucket(10'000'000), k_latency_bounds_us.size() - 1);
	EXPECT_EQ(latency_bucket(10'000'001), k_latency_bounds_us.size());
	for (std::size_t i = 1; i < k_latency_bounds_us.size(); ++i)
		EXPECT_LT(k_latency_bounds_us[i - 1], k_latency_bounds_us[i]);
}

TEST(LatencyHistogram, ZeroedBytesAreEmpty)
{
	alignas(LatencyHistogram) std::byte region[sizeof(LatencyHistogram)];
	std::memset(region, 0, sizeof(region));
	const auto *h = std::launder(reinterpret_cast<const LatencyHistogram *>(region));
	const LatencySnapshot s = h->snapshot();
	EXPECT_EQ(s.count(), 0u);
	EXPECT_EQ(s.sum_us, 0u);
}

TEST(LatencyHistogram, SnapshotIsCumulative)
{
	LatencyHistogram h{};
	h.observe(50);         // le 100 us
	h.observe(3'000);      // le 5 ms
	h.observe(3'000, 4);   // four more of them
	h.observe(60'000'000); // above every bound
	h.observe(7, 0);       // no observation at all
	const LatencySnapshot s = h.snapshot();
	EXPECT_EQ(s.cumulative[0], 1u);
	EXPECT_EQ(s.cumulative[latency_bucket(2'500)], 1u);
	EXPECT_EQ(s.cumulative[latency_bucket(5'000)], 6u);
	EXPECT_EQ(s.cumulative[k_latency_bounds_us.size() - 1], 6u);
	EXPECT_EQ(s.count(), 7u);
	EXPECT_EQ(s.sum_us, 50u + 5 * 3'000u + 60'000'000u);
	for (std::size_t i = 1; i < k_latency_buckets; ++i)
		EXPECT_LE(s.cumulative[i - 1], s.cumulative[i]);
}

} // namespace
} // namespace engram::core
