// LatencyHistogram under concurrent recording: threads record known values
// while a reader takes snapshots. No observation may be lost, and no bucket
// of a snapshot may go back from one snapshot to the next (a counter reset
// in Prometheus' eyes).
#include "core/latency_histogram.hpp"

#include <gtest/gtest.h>

#include "../unit/sanitizers.hpp"

#include <atomic>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

constexpr int k_threads = 4;
constexpr std::uint64_t k_per_thread = test_support::k_sanitized ? 20'000 : 200'000;

TEST(LatencyHistogramStress, ConcurrentRecordingLosesNothing)
{
	LatencyHistogram h{};
	std::atomic<bool> done{false};
	std::atomic<int> bad_snapshots{0};
	std::thread reader([&] {
		LatencySnapshot last{};
		while (!done.load(std::memory_order_acquire)) {
			const LatencySnapshot s = h.snapshot();
			for (std::size_t i = 0; i < k_latency_buckets; ++i)
				if (s.cumulative[i] < last.cumulative[i])
					bad_snapshots.fetch_add(1);
			last = s;
		}
	});
	std::vector<std::thread> writers;
	for (int t = 0; t < k_threads; ++t)
		writers.emplace_back([&h, t] {
			// Each thread walks the values 0..k_per_thread-1 scaled so they
			// cover every bucket, +Inf included.
			for (std::uint64_t i = 0; i < k_per_thread; ++i)
				h.observe((i * 97 + static_cast<std::uint64_t>(t)) % 20'000'000);
		});
	for (std::thread &w : writers)
		w.join();
	done.store(true, std::memory_order_release);
	reader.join();

	std::array<std::uint64_t, k_latency_buckets> expected{};
	std::uint64_t expected_sum = 0;
	for (int t = 0; t < k_threads; ++t)
		for (std::uint64_t i = 0; i < k_per_thread; ++i) {
			const std::uint64_t v = (i * 97 + static_cast<std::uint64_t>(t)) % 20'000'000;
			++expected[latency_bucket(v)];
			expected_sum += v;
		}
	const LatencySnapshot s = h.snapshot();
	std::uint64_t running = 0;
	for (std::size_t i = 0; i < k_latency_buckets; ++i) {
		running += expected[i];
		EXPECT_EQ(s.cumulative[i], running) << "bucket " << i;
	}
	EXPECT_EQ(s.count(), k_threads * k_per_thread);
	EXPECT_EQ(s.sum_us, expected_sum);
	EXPECT_EQ(bad_snapshots.load(), 0);
}

} // namespace
} // namespace engram::core
