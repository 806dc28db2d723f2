// LinkStamps under concurrent linking: one thread appends batches to a graph
// and stamps most of them (others stand for rows stored without a commit
// stamp, like a start-up load), as engram's drain does, while linker threads
// claim, link out of order and settle, as the LinkPool does. Once every node
// is linked and the threads have stopped, no batch may be left behind
// without anyone settling again (a push and a link that passes it always
// meet: link_stamps.hpp), and the histogram must hold exactly the stamped
// rows, each once. Run under ThreadSanitizer too.
#include "core/link_stamps.hpp"

#include <gtest/gtest.h>

#include "../unit/heap_region.hpp"
#include "../unit/sanitizers.hpp"
#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"

#include <atomic>
#include <random>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

constexpr std::uint32_t k_dim = 8;
constexpr int k_linkers = 3;
constexpr std::uint32_t k_rows = test_support::k_sanitized ? 1'500 : 12'000;

TEST(LinkStampsStress, EveryStampedRowIsTimedOnceItsLinksFinish)
{
	test_support::Region region(128 << 20);
	HnswConfig config;
	config.dim = k_dim;
	config.m = 6;
	config.ef_construction = 24;
	config.first_chunk_log2 = 6;
	std::uint64_t offset = 0;
	ASSERT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	HnswGraph graph(region.arena, offset);
	const std::vector<float> vectors = test_support::random_vectors(k_rows, k_dim, 11);
	LatencyHistogram latency{};
	std::atomic<bool> appending{true};
	std::atomic<std::uint64_t> settled_by_linkers{0};

	std::vector<std::thread> linkers;
	for (int t = 0; t < k_linkers; ++t)
		linkers.emplace_back([&] {
			SearchContext context;
			for (;;) {
				const bool last_look = !appending.load(std::memory_order_acquire);
				std::uint32_t first = 0;
				const std::uint32_t claimed = graph.claim_unlinked(3, first);
				// Linked newest first within a claim, so the prefix waits.
				for (std::uint32_t id = first + claimed; id-- > first;)
					graph.link(id, context);
				settled_by_linkers.fetch_add(graph.settle_link_stamps(&latency), std::memory_order_relaxed);
				if (claimed == 0) {
					if (last_look && graph.linked_count() == graph.size())
						return;
					std::this_thread::yield();
				}
			}
		});

	std::mt19937 rng(7);
	std::uint64_t stamped = 0;
	std::uint64_t settled_by_appender = 0;
	for (std::uint32_t done = 0; done < k_rows;) {
		const std::uint32_t n = std::min<std::uint32_t>(1 + rng() % 24, k_rows - done);
		std::uint32_t first = 0;
		ASSERT_EQ(graph.append_batch(std::span<const float>(vectors).subspan(std::size_t{done} * k_dim,
																			 std::size_t{n} * k_dim),
									 std::vector<std::uint64_t>(n, 1), first),
				  HnswStatus::ok);
		if (rng() % 8 != 0) {
			graph.stamp_stored(first + n, n, commit_stamp_now());
			stamped += n;
		}
		settled_by_appender += graph.settle_link_stamps(&latency);
		done += n;
	}
	appending.store(false, std::memory_order_release);
	for (std::thread &t : linkers)
		t.join();

	EXPECT_EQ(graph.linked_prefix(), k_rows);
	EXPECT_FALSE(graph.has_link_stamps()) << "a batch was left behind";
	EXPECT_EQ(latency.snapshot().count(), stamped);
	EXPECT_EQ(settled_by_appender + settled_by_linkers.load(), stamped);
	EXPECT_GT(settled_by_linkers.load(), 0u);
}

} // namespace
} // namespace engram::core
