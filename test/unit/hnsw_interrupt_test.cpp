// Searches stop when SearchParams::interrupt is raised: the graph search (both
// level-0 searches), the exact scan and the snapshot search that combines
// them return HnswStatus::interrupted, also when a signal handler raises the
// flag in the middle of a scan, as PostgreSQL's handlers raise
// InterruptPending; with the flag clear they answer as before.
#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"

#include <gtest/gtest.h>

#include "heap_region.hpp"
#include "sanitizers.hpp"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

using test_support::Region;

constexpr std::uint32_t k_dim = 16;

volatile std::sig_atomic_t interrupt_pending = 0;

void
raise_interrupt(int)
{
	interrupt_pending = 1;
}

struct Fixture {
	explicit Fixture(std::uint32_t n, std::uint32_t linked) : region(std::size_t{n} * 384 + (16 << 20))
	{
		HnswConfig config;
		config.dim = k_dim;
		config.m = 8;
		std::uint64_t offset = 0;
		EXPECT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
		graph.emplace(region.arena, offset);
		base = test_support::random_vectors(n, k_dim, 11);
		std::vector<std::uint64_t> generations(n);
		for (std::uint32_t i = 0; i < n; ++i)
			generations[i] = 1 + i % 2;
		std::uint32_t first = 0;
		EXPECT_EQ(graph->append_batch(base, generations, first), HnswStatus::ok);
		SearchContext context;
		for (std::uint32_t id = 0; id < linked; ++id)
			graph->link(id, context);
		interrupt_pending = 0;
	}
	std::span<const float> query(std::uint32_t i) const
	{
		return std::span<const float>(base).subspan(std::size_t{i} * k_dim, k_dim);
	}

	Region region;
	std::optional<HnswGraph> graph;
	std::vector<float> base;
};

TEST(HnswInterrupt, RaisedFlagStopsEverySearch)
{
	Fixture f(3000, 2000);
	SearchContext context;
	SearchParams params;
	params.k = 5;
	params.interrupt = &interrupt_pending;
	// Clear: the answers of a search without the flag.
	EXPECT_EQ(f.graph->search(f.query(5), params, context).status, HnswStatus::ok);
	const SearchResult snapshot = f.graph->snapshot_search(f.query(2500), params, context);
	ASSERT_EQ(snapshot.status, HnswStatus::ok);
	EXPECT_EQ(snapshot.neighbors[0].id, 2500u);
	EXPECT_EQ(f.graph->exact_search(f.query(7), params, 0, k_no_node, context).neighbors[0].id, 7u);

	interrupt_pending = 1;
	const SearchResult graph = f.graph->search(f.query(5), params, context);
	EXPECT_EQ(graph.status, HnswStatus::interrupted);
	EXPECT_TRUE(graph.neighbors.empty());
	SearchParams filtered = params;
	filtered.max_generation = 1; // half the nodes are invisible: the filtered level-0 search
	EXPECT_EQ(f.graph->search(f.query(5), filtered, context).status, HnswStatus::interrupted);
	EXPECT_EQ(f.graph->exact_search(f.query(7), params, 0, k_no_node, context).status, HnswStatus::interrupted);
	const SearchResult stopped = f.graph->snapshot_search(f.query(2500), params, context);
	EXPECT_EQ(stopped.status, HnswStatus::interrupted);
	EXPECT_TRUE(stopped.neighbors.empty());
	EXPECT_STREQ(to_string(HnswStatus::interrupted), "search interrupted");

	// Searches without the pointer ignore it.
	params.interrupt = nullptr;
	EXPECT_EQ(f.graph->snapshot_search(f.query(2500), params, context).neighbors[0].id, 2500u);
}

TEST(HnswInterrupt, SignalStopsAnExactScanUnderWay)
{
	// A large unlinked tail: every snapshot search scans all of it. Another
	// thread signals this one while it searches in a loop; the handler raises
	// the flag and the scan under way stops short of the end of the tail.
	if (test_support::k_thread_sanitizer)
		GTEST_SKIP() << "ThreadSanitizer holds asynchronous signals back until the thread calls into libc";
	constexpr std::uint32_t n = 200'000;
	Fixture f(n, 0);
	struct sigaction action = {}, previous = {};
	action.sa_handler = raise_interrupt;
	sigemptyset(&action.sa_mask);
	ASSERT_EQ(sigaction(SIGUSR1, &action, &previous), 0);
	const pthread_t searcher = pthread_self();
	std::thread signaller([searcher] {
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
		pthread_kill(searcher, SIGUSR1);
	});
	SearchContext context;
	SearchParams params;
	params.k = 10;
	params.interrupt = &interrupt_pending;
	SearchResult result;
	int searches = 0;
	for (; searches < 100'000; ++searches) {
		result = f.graph->snapshot_search(f.query(searches % n), params, context);
		if (result.status != HnswStatus::ok)
			break;
		ASSERT_EQ(result.neighbors.size(), 10u);
	}
	signaller.join();
	sigaction(SIGUSR1, &previous, nullptr);
	EXPECT_EQ(result.status, HnswStatus::interrupted) << "after " << searches << " searches";
	EXPECT_LT(result.stats.distances, n) << "the scan stopped before the end of the tail";
	EXPECT_TRUE(result.neighbors.empty());
}

} // namespace
} // namespace engram::core
