// A graph grows past the ceiling of the former fixed chunk directory (about
// 2 M vectors of 768 dimensions, a million here with small chunks) while
// threads append, link and search it at once: every vector reads back as it
// was stored, every node ends up linked, and searches find stored vectors.
// Low dimensions and small chunks keep the memory small enough for CI; under
// the sanitizers the graph is smaller (linking it is memory-bound and slow
// there) and its chunks tinier, so it still reaches the index blocks.
#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"

#include <gtest/gtest.h>

#include "heap_region.hpp"
#include "sanitizers.hpp"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

using test_support::k_thread_sanitizer;
using test_support::Region;

constexpr std::uint32_t k_dim = 4;
using test_support::k_sanitized;

constexpr std::uint32_t k_nodes = k_thread_sanitizer ? 120'000 : k_sanitized ? 300'000 : 2'200'000;
constexpr std::uint32_t k_first_chunk_log2 = k_sanitized ? 4 : 10;
constexpr std::uint32_t k_max_chunk_log2 = k_thread_sanitizer ? 6 : k_sanitized ? 8 : 12;
constexpr std::uint32_t k_batch = 5000;

// Nodes a graph with these chunk sizes held when its directory was 256 fixed slots.
constexpr std::uint64_t
former_ceiling()
{
	constexpr std::uint64_t doubling = k_max_chunk_log2 - k_first_chunk_log2 + 1;
	return (((std::uint64_t{1} << doubling) - 1) << k_first_chunk_log2) + ((256 - doubling) << k_max_chunk_log2);
}

TEST(HnswLargeGraph, GrowsPastTheFormerDirectoryWhileLinkedAndSearched)
{
	static_assert(k_nodes > former_ceiling());
	Region region(std::size_t{k_nodes} * 256 + (64 << 20));
	HnswConfig config;
	config.dim = k_dim;
	config.m = 4; // cheap links: the test is about growth, not quality
	config.ef_construction = 16;
	config.first_chunk_log2 = k_first_chunk_log2;
	config.max_chunk_log2 = k_max_chunk_log2;
	std::uint64_t offset = 0;
	ASSERT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	HnswGraph graph(region.arena, offset);
	const std::vector<float> base = test_support::random_vectors(k_nodes, k_dim, 4242);

	std::atomic<bool> appending{true}, append_failed{false};
	std::atomic<std::uint32_t> probes{0}, misses{0};
	std::thread appender([&] {
		for (std::uint32_t i = 0; i < k_nodes; i += k_batch) {
			// Stays a few batches ahead of the linkers, as the workers' backpressure would.
			while (graph.size() - graph.linked_count() > 8 * k_batch)
				std::this_thread::sleep_for(std::chrono::milliseconds(1));
			const std::uint32_t n = std::min(k_batch, k_nodes - i);
			const std::vector<std::uint64_t> generations(n, 1);
			std::uint32_t first = 0;
			if (graph.append_batch(std::span<const float>(base).subspan(std::size_t{i} * k_dim, std::size_t{n} * k_dim),
								   generations, first) != HnswStatus::ok ||
				first != i) {
				append_failed = true;
				break;
			}
		}
		appending = false;
	});
	std::vector<std::thread> linkers;
	for (int t = 0; t < 2; ++t)
		linkers.emplace_back([&] {
			SearchContext context;
			for (;;) {
				const bool more = appending.load();
				std::uint32_t first = 0;
				const std::uint32_t n = graph.claim_unlinked(64, first);
				for (std::uint32_t id = first; id < first + n; ++id)
					graph.link(id, context);
				if (n == 0 && !more)
					return;
				if (n == 0)
					std::this_thread::yield();
			}
		});
	// A reader searches for stored vectors while the graph grows: each comes
	// back as its own nearest neighbour (the exact tail covers the nodes not
	// linked yet), but for the few linked ones the approximate graph search
	// misses, as at the end below.
	std::thread reader([&] {
		SearchContext context;
		SearchParams params;
		params.k = 1;
		std::uint64_t probe = 1;
		while (appending.load()) {
			const std::uint64_t stored = graph.size();
			if (stored == 0)
				continue;
			probe = probe * 6364136223846793005ULL + 1442695040888963407ULL;
			const std::uint64_t id = (probe >> 20) % stored;
			const SearchResult r =
				graph.snapshot_search(std::span<const float>(base).subspan(id * k_dim, k_dim), params, context);
			ASSERT_EQ(r.status, HnswStatus::ok);
			probes.fetch_add(1);
			if (r.neighbors.empty() || r.neighbors[0].distance != 0.0f)
				misses.fetch_add(1);
			std::this_thread::sleep_for(std::chrono::milliseconds(2));
		}
	});
	appender.join();
	reader.join();
	for (std::thread &l : linkers)
		l.join();
	ASSERT_FALSE(append_failed.load()) << "the arena holds the whole graph";
	EXPECT_LE(misses.load() * 100, probes.load()) << misses.load() << " of " << probes.load() << " probes missed";
	ASSERT_EQ(graph.size(), k_nodes);
	EXPECT_EQ(graph.linked_count(), k_nodes);
	EXPECT_EQ(graph.linked_prefix(), k_nodes);

	std::vector<float> stored(k_dim);
	for (std::uint32_t id = 0; id < k_nodes; ++id) {
		graph.stored_vector(id, stored);
		for (std::uint32_t d = 0; d < k_dim; ++d)
			ASSERT_EQ(stored[d], base[std::size_t{id} * k_dim + d]) << "node " << id;
	}
	// The linked graph alone finds stored vectors, old and new.
	SearchContext context;
	SearchParams params;
	params.k = 1;
	params.ef = 32;
	std::uint32_t found = 0, asked = 0;
	for (std::uint32_t id = 7; id < k_nodes; id += k_nodes / 1000, ++asked) {
		const SearchResult r =
			graph.search(std::span<const float>(base).subspan(std::size_t{id} * k_dim, k_dim), params, context);
		found += !r.neighbors.empty() && r.neighbors[0].distance == 0.0f ? 1 : 0;
	}
	EXPECT_GE(found, asked * 99 / 100) << found << " of " << asked;
	graph.destroy();
	EXPECT_EQ(region.arena.used_bytes(), 0u);
}

} // namespace
} // namespace engram::core
