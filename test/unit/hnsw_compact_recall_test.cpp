// Recall after heavy forgetting: glove100 (100,000 cosine vectors) is
// indexed at the space defaults (m 16, ef_construction 200), a random half is
// forgotten and the graph compacted; recall@10 at ef_search 128 against the
// exact top-10 of the remaining rows must stay at or above 0.95, and the
// copy must take about half the memory.
//
// The exact top-10 of the remaining rows comes from the data set's own
// ground truth (the exact top-100 of all rows): the first ten surviving ids
// of a query's top-100 are its exact top-10 among the survivors, as long as
// ten of the hundred survive (checked; with half the rows left, all but
// certain). The graph is built on one thread, so the figures are reproducible.
#include "support/fvecs.hpp"
#include "core/hnsw_compact.hpp"
#include "core/hnsw_context.hpp"

#include <gtest/gtest.h>

#include "heap_region.hpp"
#include "sanitizers.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>
#include <vector>

namespace engram::core {
namespace {

using test_support::Region;

constexpr std::uint32_t k_k = 10;
constexpr std::uint32_t k_ef_search = 128;

// Recall@10 of the graph (labels are base rows) against `truth`, k ids per query.
double
recall(const HnswGraph &graph, const Dataset &data, const std::vector<std::int64_t> &truth)
{
	SearchContext context;
	SearchParams params;
	params.k = k_k;
	params.ef = k_ef_search;
	std::size_t hits = 0;
	for (std::size_t q = 0; q < data.query.rows(); ++q) {
		const SearchResult r = graph.search(data.query.row(q), params, context);
		EXPECT_EQ(r.status, HnswStatus::ok);
		for (const Neighbor &n : r.neighbors) {
			const auto first = truth.begin() + static_cast<std::ptrdiff_t>(q * k_k);
			hits += std::find(first, first + k_k, graph.label(n.id)) != first + k_k;
		}
	}
	return static_cast<double>(hits) / static_cast<double>(data.query.rows() * k_k);
}

TEST(CompactionRecall, Glove100HalfForgottenKeepsRecallAtSpaceDefaults)
{
	if (test_support::k_sanitized)
		GTEST_SKIP() << "full-size data sets run in the normal build only";
	if (!std::filesystem::exists(std::filesystem::path(ENGRAM_DATA_DIR) / "glove100"))
		GTEST_SKIP() << "glove100 is not in " << ENGRAM_DATA_DIR;
	Dataset data;
	ASSERT_EQ(load_dataset(ENGRAM_DATA_DIR, "glove100", data), "");
	const std::size_t n = data.base.rows();

	Region region(std::size_t{3} * n * (192 + 448) + (64u << 20));
	HnswConfig config;
	config.dim = data.base.dim;
	config.metric = Metric::cosine;
	config.m = 16;
	config.ef_construction = 200;
	std::uint64_t offset = 0;
	ASSERT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	HnswGraph graph(region.arena, offset);
	{
		SearchContext context;
		context.reserve(graph, config.ef_construction, n);
		for (std::size_t i = 0; i < n; ++i) {
			std::uint32_t id = 0;
			ASSERT_EQ(graph.append(data.base.row(i), NodeData{1, static_cast<std::int64_t>(i), 1.0f}, id),
					  HnswStatus::ok);
			ASSERT_TRUE(graph.link(id, context));
		}
	}

	std::vector<std::uint32_t> rows(n);
	std::iota(rows.begin(), rows.end(), 0u);
	std::shuffle(rows.begin(), rows.end(), std::mt19937(20240611));
	std::vector<bool> forgotten(n, false);
	for (std::size_t i = 0; i < n / 2; ++i) {
		forgotten[rows[i]] = true;
		ASSERT_EQ(graph.forget_node(rows[i], 2), ForgetResult::forgotten);
	}
	std::vector<std::int64_t> truth(data.query.rows() * k_k);
	for (std::size_t q = 0; q < data.query.rows(); ++q) {
		std::size_t found = 0;
		for (const std::int32_t row : data.truth.row(q))
			if (found < k_k && !forgotten[static_cast<std::size_t>(row)])
				truth[q * k_k + found++] = row;
		ASSERT_EQ(found, k_k) << "query " << q << ": fewer than ten of its top-100 survive";
	}
	const double before = recall(graph, data, truth);

	const std::size_t arena_before = region.arena.used_bytes();
	std::uint64_t compacted = 0;
	CompactionStats stats;
	ASSERT_EQ(compact(graph, 2, compacted, &stats), HnswStatus::ok);
	graph.destroy();
	const HnswGraph copy(region.arena, compacted);
	EXPECT_EQ(stats.removed, n / 2);
	EXPECT_EQ(copy.size(), n - n / 2);
	const double after = recall(copy, data, truth);
	std::printf("glove100, half forgotten, recall@10 at ef %u: %.4f on the graph with forgotten nodes, %.4f compacted\n"
				"  %llu lists repaired, %llu tree nodes reattached; graph memory %zu -> %zu bytes, arena %zu -> %zu\n",
				k_ef_search, before, after, static_cast<unsigned long long>(stats.repaired_lists),
				static_cast<unsigned long long>(stats.reattached), stats.bytes_before, stats.bytes_after, arena_before,
				region.arena.used_bytes());
	EXPECT_GE(after, 0.95);
	EXPECT_LE(stats.bytes_after * 10, stats.bytes_before * 6) << "the copy holds half the nodes";
	EXPECT_EQ(region.arena.used_bytes(), stats.bytes_after);
}

} // namespace
} // namespace engram::core
