// Single-threaded behaviour of the HNSW graph: configuration and input
// errors, search quality against brute force, the snapshot filter
// (generation bound and forgotten generation), the exact tail of unlinked nodes, and
// persistence (the arena bytes written to a file and attached elsewhere).
#include "core/hnsw_graph.hpp"

#include "core/hnsw_context.hpp"

#include <gtest/gtest.h>

#include "heap_region.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <vector>

namespace engram::core {
namespace {

using test_support::Line;
using test_support::Region;
using test_support::random_vectors;

HnswGraph
make_graph(Region &region, std::uint32_t dim, Metric metric = Metric::l2, Encoding encoding = Encoding::float32,
		   std::uint32_t m = 8)
{
	HnswConfig config;
	config.dim = dim;
	config.metric = metric;
	config.encoding = encoding;
	config.m = m;
	config.ef_construction = 64;
	config.first_chunk_log2 = 6; // small chunks, so tests cross chunk boundaries
	std::uint64_t offset = 0;
	EXPECT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	return HnswGraph(region.arena, offset);
}

std::span<const float>
row(const std::vector<float> &v, std::size_t i, std::uint32_t dim)
{
	return std::span<const float>(v).subspan(i * dim, dim);
}

// Brute force in double precision over the visible ids, nearest first.
std::vector<std::uint32_t>
brute_force(const std::vector<float> &base, std::uint32_t dim, std::span<const float> q, std::size_t k,
			const std::vector<bool> &visible)
{
	std::vector<std::pair<double, std::uint32_t>> all;
	for (std::uint32_t i = 0; i < visible.size(); ++i) {
		if (!visible[i])
			continue;
		double d = 0.0;
		for (std::uint32_t j = 0; j < dim; ++j)
			d += (double(q[j]) - base[i * dim + j]) * (double(q[j]) - base[i * dim + j]);
		all.emplace_back(d, i);
	}
	std::sort(all.begin(), all.end());
	std::vector<std::uint32_t> ids;
	for (std::size_t i = 0; i < std::min(k, all.size()); ++i)
		ids.push_back(all[i].second);
	return ids;
}

std::vector<std::uint32_t>
ids_of(const SearchResult &r)
{
	std::vector<std::uint32_t> ids;
	for (const Neighbor &n : r.neighbors)
		ids.push_back(n.id);
	return ids;
}

TEST(HnswGraph, RejectsBadConfigurationAndHeaders)
{
	Region region(1 << 20);
	std::uint64_t offset = 0;
	HnswConfig config;
	EXPECT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::invalid_config); // dim 0
	config.dim = 4;
	config.m = 1;
	EXPECT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::invalid_config);
	config.m = 128;
	EXPECT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::invalid_config);
	config.m = 16;
	config.ef_construction = 0;
	EXPECT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::invalid_config);
	config.ef_construction = 10;
	ASSERT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	EXPECT_EQ(HnswGraph::check(region.arena, offset), HnswStatus::ok);
	EXPECT_EQ(HnswGraph::check(region.arena, 0), HnswStatus::invalid_header);
	const std::uint64_t other = region.arena.allocate(4096);
	std::memset(region.arena.at<std::byte>(other), 0, 4096);
	EXPECT_EQ(HnswGraph::check(region.arena, other), HnswStatus::invalid_header);
	EXPECT_STREQ(to_string(HnswStatus::dimension_mismatch), "vector has the wrong number of dimensions");
}

TEST(HnswGraph, RejectsBadVectorsWithoutStoringThem)
{
	Region region(4 << 20);
	HnswGraph graph = make_graph(region, 3, Metric::cosine);
	SearchContext context;
	std::uint32_t id = 0;
	const std::vector<float> short_vector{1.0f, 2.0f};
	const std::vector<float> nan_vector{1.0f, std::nanf(""), 0.0f};
	const std::vector<float> zero_vector{0.0f, 0.0f, 0.0f};
	EXPECT_EQ(graph.append(short_vector, 1, id), HnswStatus::dimension_mismatch);
	EXPECT_EQ(graph.append(nan_vector, 1, id), HnswStatus::invalid_vector);
	EXPECT_EQ(graph.insert(zero_vector, 1, context), HnswStatus::invalid_vector);
	EXPECT_EQ(graph.size(), 0u);
	// A batch with one bad vector stores none of it.
	const std::vector<float> batch{1, 0, 0, 0, 0, 0};
	const std::vector<std::uint64_t> generations{1, 1};
	EXPECT_EQ(graph.append_batch(batch, generations, id), HnswStatus::invalid_vector);
	EXPECT_EQ(graph.size(), 0u);
	EXPECT_EQ(graph.search(short_vector, SearchParams{}, context).status, HnswStatus::dimension_mismatch);
	EXPECT_EQ(graph.forget_node(0, 1), ForgetResult::not_found);
	EXPECT_EQ(graph.forget(0, 1), ForgetResult::not_found);
}

TEST(HnswGraph, EmptyGraphAndFirstNode)
{
	Region region(4 << 20);
	HnswGraph graph = make_graph(region, 4);
	SearchContext context;
	const std::vector<float> q{1, 2, 3, 4};
	SearchResult r = graph.search(q, SearchParams{}, context);
	EXPECT_EQ(r.status, HnswStatus::ok);
	EXPECT_TRUE(r.neighbors.empty());
	EXPECT_EQ(graph.entry_point(), k_no_node);
	std::uint32_t id = 99;
	ASSERT_EQ(graph.insert(q, 5, context, &id), HnswStatus::ok);
	EXPECT_EQ(id, 0u);
	EXPECT_EQ(graph.entry_point(), 0u);
	EXPECT_EQ(graph.max_level(), graph.level(0));
	EXPECT_FALSE(graph.link(0, context)) << "a node is linked once";
	r = graph.search(q, SearchParams{}, context);
	ASSERT_EQ(r.neighbors.size(), 1u);
	EXPECT_EQ(r.neighbors[0].id, 0u);
	EXPECT_FLOAT_EQ(r.neighbors[0].distance, 0.0f);
	SearchParams before;
	before.max_generation = 4;
	EXPECT_TRUE(graph.search(q, before, context).neighbors.empty());
}

TEST(HnswGraph, SearchMatchesBruteForceAndExactSearchIsExact)
{
	constexpr std::uint32_t dim = 16, n = 2000;
	Region region(32 << 20);
	HnswGraph graph = make_graph(region, dim);
	const auto base = random_vectors(n, dim, 11);
	const auto queries = random_vectors(50, dim, 12);
	SearchContext context;
	for (std::uint32_t i = 0; i < n; ++i)
		ASSERT_EQ(graph.insert(row(base, i, dim), 1, context), HnswStatus::ok);
	EXPECT_EQ(graph.linked_prefix(), n);
	const std::vector<bool> all(n, true);
	std::size_t hits = 0;
	SearchParams params;
	params.k = 10;
	params.ef = 100;
	for (std::size_t q = 0; q < 50; ++q) {
		const auto want = brute_force(base, dim, row(queries, q, dim), 10, all);
		const SearchResult r = graph.search(row(queries, q, dim), params, context);
		ASSERT_EQ(r.neighbors.size(), 10u);
		EXPECT_TRUE(std::is_sorted(r.neighbors.begin(), r.neighbors.end()));
		for (std::uint32_t id : ids_of(r))
			hits += std::count(want.begin(), want.end(), id);
		EXPECT_GT(r.stats.distances, 0u);
		const SearchResult e = graph.exact_search(row(queries, q, dim), params, 0, n, context);
		EXPECT_EQ(ids_of(e), want);
	}
	EXPECT_GE(hits, 50u * 10 * 97 / 100);
}

TEST(HnswGraph, GenerationBoundReturnsExactlyTheVisibleSet)
{
	constexpr std::uint32_t dim = 8, n = 600;
	Region region(16 << 20);
	HnswGraph graph = make_graph(region, dim);
	const auto base = random_vectors(n, dim, 21);
	std::mt19937 rng(22);
	std::uniform_int_distribution<std::uint64_t> gen(1, 10);
	std::vector<std::uint64_t> generations(n);
	SearchContext context;
	for (std::uint32_t i = 0; i < n; ++i) {
		generations[i] = gen(rng);
		ASSERT_EQ(graph.insert(row(base, i, dim), generations[i], context), HnswStatus::ok);
	}
	// Every 7th node is forgotten at a random generation, which is never
	// earlier than its own (a node forgotten "before" it was stored is never seen).
	std::vector<std::uint64_t> forgotten(n, k_never_forgotten);
	for (std::uint32_t i = 0; i < n; i += 7) {
		const std::uint64_t at = gen(rng);
		ASSERT_EQ(graph.forget_node(i, at), ForgetResult::forgotten);
		forgotten[i] = std::max(at, generations[i]);
		ASSERT_EQ(graph.forgotten(i), forgotten[i]);
	}
	EXPECT_EQ(graph.forget_node(7, 1), ForgetResult::already_forgotten) << "the first forget stands";
	EXPECT_EQ(graph.forgotten(7), forgotten[7]);
	EXPECT_EQ(graph.forgotten_count(), (n + 6) / 7);
	const auto queries = random_vectors(5, dim, 23);
	for (std::uint64_t bound = 0; bound <= 11; ++bound) {
		std::vector<bool> visible(n);
		std::set<std::uint32_t> want;
		for (std::uint32_t i = 0; i < n; ++i) {
			visible[i] = generations[i] <= bound && bound < forgotten[i];
			if (visible[i])
				want.insert(i);
		}
		SearchParams params;
		params.k = n;
		params.ef = n;
		params.max_generation = bound;
		for (std::size_t q = 0; q < 5; ++q) {
			const SearchResult r = graph.search(row(queries, q, dim), params, context);
			const auto got = ids_of(r);
			EXPECT_EQ(std::set<std::uint32_t>(got.begin(), got.end()), want) << "bound " << bound;
			EXPECT_EQ(got.size(), want.size());
			const SearchResult e = graph.exact_search(row(queries, q, dim), params, 0, n, context);
			EXPECT_EQ(ids_of(e), brute_force(base, dim, row(queries, q, dim), n, visible));
			// With a small k the graph search still returns only visible nodes.
			SearchParams small = params;
			small.k = 10;
			small.ef = 32;
			for (std::uint32_t id : ids_of(graph.search(row(queries, q, dim), small, context)))
				EXPECT_TRUE(visible[id]) << "id " << id << " bound " << bound;
		}
	}
}

TEST(HnswGraph, UnlinkedNodesAreFoundBySnapshotSearchOnly)
{
	constexpr std::uint32_t dim = 8, linked = 300, stored = 340;
	Region region(16 << 20);
	HnswGraph graph = make_graph(region, dim);
	const auto base = random_vectors(stored, dim, 31);
	SearchContext context;
	for (std::uint32_t i = 0; i < linked; ++i)
		ASSERT_EQ(graph.insert(row(base, i, dim), 1, context), HnswStatus::ok);
	const std::vector<std::uint64_t> generations(stored - linked, 2);
	std::uint32_t first = 0;
	ASSERT_EQ(graph.append_batch(std::span<const float>(base).subspan(linked * dim), generations, first),
			  HnswStatus::ok);
	EXPECT_EQ(first, linked);
	EXPECT_EQ(graph.size(), stored);
	EXPECT_EQ(graph.linked_prefix(), linked);
	SearchParams params;
	params.k = stored;
	params.ef = stored;
	for (std::uint32_t q = linked; q < stored; q += 10) {
		// The stored vector itself as the query: only the snapshot search can find it.
		const auto graph_ids = ids_of(graph.search(row(base, q, dim), params, context));
		EXPECT_EQ(graph_ids.size(), linked);
		const SearchResult r = graph.snapshot_search(row(base, q, dim), params, context);
		ASSERT_EQ(r.neighbors.size(), stored);
		EXPECT_EQ(r.neighbors[0].id, q);
		const auto ids = ids_of(r);
		EXPECT_EQ(std::set<std::uint32_t>(ids.begin(), ids.end()).size(), stored) << "no duplicates";
	}
	// Generation 1 excludes every unlinked node.
	params.max_generation = 1;
	EXPECT_EQ(graph.snapshot_search(row(base, 0, dim), params, context).neighbors.size(), linked);
	// Linking the tail moves the prefix and changes nothing a snapshot sees.
	for (std::uint32_t i = linked; i < stored; ++i)
		EXPECT_TRUE(graph.link(i, context));
	EXPECT_EQ(graph.linked_prefix(), stored);
	params.max_generation = 2;
	EXPECT_EQ(graph.snapshot_search(row(base, 0, dim), params, context).neighbors.size(), stored);
}

TEST(HnswGraph, NodesCarryLabelAndConfidenceAndSearchesFilterOnIt)
{
	constexpr std::uint32_t dim = 8, linked = 400, stored = 450;
	Region region(16 << 20);
	HnswGraph graph = make_graph(region, dim);
	const auto base = random_vectors(stored, dim, 41);
	std::vector<NodeData> data(stored);
	for (std::uint32_t i = 0; i < stored; ++i)
		data[i] = NodeData{1 + i % 3, 1000000 + 7 * std::int64_t{i}, static_cast<float>(i % 10) / 10.0f};
	std::uint32_t first = 99;
	ASSERT_EQ(graph.append_batch(base, data, first), HnswStatus::ok);
	EXPECT_EQ(first, 0u);
	SearchContext context;
	for (std::uint32_t i = 0; i < linked; ++i)
		ASSERT_TRUE(graph.link(i, context));
	EXPECT_EQ(graph.linked_count(), linked);
	EXPECT_EQ(graph.max_generation(), 3u);
	for (std::uint32_t i = 0; i < stored; i += 37) {
		EXPECT_EQ(graph.label(i), data[i].label);
		EXPECT_EQ(graph.confidence(i), data[i].confidence);
		EXPECT_EQ(graph.generation(i), data[i].generation);
	}
	const auto queries = random_vectors(4, dim, 42);
	for (const float floor : {0.0f, 0.35f, 0.9f}) {
		for (const std::uint64_t bound : {std::uint64_t{2}, std::uint64_t{3}}) {
			std::vector<bool> visible(stored);
			std::set<std::uint32_t> want;
			for (std::uint32_t i = 0; i < stored; ++i) {
				visible[i] = data[i].confidence >= floor && data[i].generation <= bound;
				if (visible[i])
					want.insert(i);
			}
			SearchParams params;
			params.k = stored;
			params.ef = stored;
			params.max_generation = bound;
			params.min_confidence = floor;
			for (std::size_t q = 0; q < 4; ++q) {
				const auto ids = ids_of(graph.snapshot_search(row(queries, q, dim), params, context));
				EXPECT_EQ(std::set<std::uint32_t>(ids.begin(), ids.end()), want) << floor << " " << bound;
				SearchParams small = params;
				small.k = 10;
				small.ef = 16;
				const auto near = ids_of(graph.snapshot_search(row(queries, q, dim), small, context));
				EXPECT_EQ(near.size(), 10u);
				for (std::uint32_t id : near)
					EXPECT_TRUE(visible[id]) << "id " << id;
			}
		}
	}
}

TEST(HnswGraph, ClaimUnlinkedHandsOutEveryStoredIdOnce)
{
	constexpr std::uint32_t dim = 4;
	Region region(4 << 20);
	HnswGraph graph = make_graph(region, dim);
	std::uint32_t first = 0;
	EXPECT_EQ(graph.claim_unlinked(8, first), 0u) << "nothing stored";
	const auto base = random_vectors(20, dim, 43);
	ASSERT_EQ(graph.append_batch(std::span<const float>(base).first(13 * dim), std::vector<std::uint64_t>(13, 1),
								 first),
			  HnswStatus::ok);
	EXPECT_EQ(graph.claim_unlinked(8, first), 8u);
	EXPECT_EQ(first, 0u);
	EXPECT_EQ(graph.claim_unlinked(8, first), 5u);
	EXPECT_EQ(first, 8u);
	EXPECT_EQ(graph.claim_unlinked(8, first), 0u);
	ASSERT_EQ(graph.append_batch(std::span<const float>(base).subspan(13 * dim), std::vector<std::uint64_t>(7, 1),
								 first),
			  HnswStatus::ok);
	EXPECT_EQ(graph.claim_unlinked(100, first), 7u);
	EXPECT_EQ(first, 13u);
}

TEST(HnswGraph, CosineAndInnerProductRankLikeBruteForce)
{
	constexpr std::uint32_t dim = 12, n = 500;
	const auto base = random_vectors(n, dim, 41);
	const auto q = random_vectors(1, dim, 42);
	for (Metric metric : {Metric::cosine, Metric::inner_product}) {
		Region region(16 << 20);
		HnswGraph graph = make_graph(region, dim, metric);
		SearchContext context;
		for (std::uint32_t i = 0; i < n; ++i)
			ASSERT_EQ(graph.insert(row(base, i, dim), 1, context), HnswStatus::ok);
		std::vector<std::pair<double, std::uint32_t>> want;
		for (std::uint32_t i = 0; i < n; ++i) {
			double dot = 0.0, norm = 0.0;
			for (std::uint32_t j = 0; j < dim; ++j) {
				dot += double(q[j]) * base[i * dim + j];
				norm += double(base[i * dim + j]) * base[i * dim + j];
			}
			// Cosine normalises both sides; the query norm does not change the ranking.
			want.emplace_back(metric == Metric::cosine ? -dot / std::sqrt(norm) : -dot, i);
		}
		std::sort(want.begin(), want.end());
		SearchParams params;
		params.k = 5;
		const auto exact = ids_of(graph.exact_search(q, params, 0, n, context));
		for (std::size_t i = 0; i < 5; ++i)
			EXPECT_EQ(exact[i], want[i].second) << "metric " << int(metric);
		params.ef = 200;
		EXPECT_EQ(ids_of(graph.search(q, params, context)), exact);
	}
}

TEST(HnswGraph, QuantizedGraphsRerankWithFloat32Source)
{
	constexpr std::uint32_t dim = 32, n = 1500;
	const auto base = random_vectors(n, dim, 51);
	const auto queries = random_vectors(20, dim, 52);
	struct Source {
		const std::vector<float> *base;
	} source{&base};
	const VectorSource rerank{[](const void *self, std::uint32_t id) noexcept -> const float * {
								  return static_cast<const Source *>(self)->base->data() + std::size_t{id} * dim;
							  },
							  &source};
	const std::vector<bool> all(n, true);
	for (Encoding encoding : {Encoding::float16, Encoding::sq8}) {
		Region region(32 << 20);
		HnswGraph graph = make_graph(region, dim, Metric::l2, encoding);
		SearchContext context;
		for (std::uint32_t i = 0; i < n; ++i)
			ASSERT_EQ(graph.insert(row(base, i, dim), 1, context), HnswStatus::ok);
		SearchParams params;
		params.k = 10;
		params.ef = 100;
		params.rerank = &rerank;
		std::size_t hits = 0;
		for (std::size_t q = 0; q < 20; ++q) {
			const auto want = brute_force(base, dim, row(queries, q, dim), 10, all);
			const SearchResult r = graph.search(row(queries, q, dim), params, context);
			ASSERT_EQ(r.neighbors.size(), 10u);
			for (const Neighbor &nb : r.neighbors) {
				hits += std::count(want.begin(), want.end(), nb.id);
				// Re-ranked distances are exact float32 distances.
				double d = 0.0;
				for (std::uint32_t j = 0; j < dim; ++j)
					d += (double(queries[q * dim + j]) - base[nb.id * dim + j]) *
						 (double(queries[q * dim + j]) - base[nb.id * dim + j]);
				EXPECT_NEAR(nb.distance, d, 1e-3 * d);
			}
			EXPECT_EQ(ids_of(graph.exact_search(row(queries, q, dim), params, 0, n, context)), want);
		}
		EXPECT_GE(hits, 20u * 10 * 95 / 100) << "encoding " << int(encoding);
		std::vector<float> decoded(dim);
		graph.stored_vector(3, decoded);
		for (std::uint32_t j = 0; j < dim; ++j)
			EXPECT_NEAR(decoded[j], base[3 * dim + j], 0.05f);
	}
}

TEST(HnswGraph, NeighbourListsRespectBoundsAndLevels)
{
	constexpr std::uint32_t dim = 8, n = 1500;
	Region region(16 << 20);
	HnswGraph graph = make_graph(region, dim, Metric::l2, Encoding::float32, 6);
	const auto base = random_vectors(n, dim, 61);
	SearchContext context;
	for (std::uint32_t i = 0; i < n; ++i)
		ASSERT_EQ(graph.insert(row(base, i, dim), 1, context), HnswStatus::ok);
	std::vector<std::uint32_t> links(graph.m0());
	std::uint32_t top = 0;
	std::vector<std::uint32_t> population(32, 0);
	for (std::uint32_t id = 0; id < n; ++id) {
		top = std::max(top, graph.level(id));
		for (std::uint32_t l = 0; l <= graph.level(id); ++l)
			++population[l];
	}
	for (std::uint32_t id = 0; id < n; ++id) {
		for (std::uint32_t l = 0; l <= graph.level(id); ++l) {
			const std::uint32_t count = graph.neighbors(id, l, links);
			EXPECT_LE(count, l == 0 ? graph.m0() : graph.m());
			// Only a node alone on its level has nobody to link to.
			if (population[l] > 1) {
				EXPECT_GT(count, 0u) << "node " << id << " level " << l;
			}
			for (std::uint32_t i = 0; i < count; ++i)
				EXPECT_GE(graph.level(links[i]), l);
		}
	}
	EXPECT_EQ(graph.max_level(), top);
	EXPECT_EQ(graph.level(graph.entry_point()), top);
	EXPECT_EQ(graph.neighbors(0, graph.level(0) + 1, links), 0u);
}

TEST(HnswGraph, PersistsAsArenaBytesAndAttachesAtAnotherAddress)
{
	constexpr std::uint32_t dim = 10, n = 800;
	constexpr std::size_t bytes = 16 << 20;
	const auto base = random_vectors(n, dim, 71);
	const auto queries = random_vectors(10, dim, 72);
	auto original = std::make_unique<Region>(bytes);
	HnswGraph graph = make_graph(*original, dim);
	const std::uint64_t offset = graph.header_offset();
	SearchContext context;
	for (std::uint32_t i = 0; i < n; ++i)
		ASSERT_EQ(graph.insert(row(base, i, dim), i, context), HnswStatus::ok);
	ASSERT_EQ(graph.forget_node(5, 0), ForgetResult::forgotten);
	SearchParams params;
	params.max_generation = 700;
	std::vector<std::vector<Neighbor>> before;
	for (std::size_t q = 0; q < 10; ++q) {
		const SearchResult r = graph.search(row(queries, q, dim), params, context);
		before.emplace_back(r.neighbors.begin(), r.neighbors.end());
	}

	// Write the arena to a file, drop it, read the file into a new region.
	std::unique_ptr<std::FILE, int (*)(std::FILE *)> file(std::tmpfile(), &std::fclose);
	ASSERT_TRUE(file);
	ASSERT_EQ(std::fwrite(original->base(), 1, bytes, file.get()), bytes);
	original.reset();
	std::rewind(file.get());
	std::vector<Line> restored(bytes / sizeof(Line));
	ASSERT_EQ(std::fread(restored.data(), 1, bytes, file.get()), bytes);

	const Arena arena(reinterpret_cast<std::byte *>(restored.data()));
	ASSERT_EQ(HnswGraph::check(arena, offset), HnswStatus::ok);
	HnswGraph attached(arena, offset);
	EXPECT_EQ(attached.size(), n);
	EXPECT_EQ(attached.forgotten(5), 5u) << "forgotten from its own generation on";
	EXPECT_EQ(attached.find_label(5), std::optional<std::uint32_t>(5)) << "the label table moves with the arena";
	SearchContext fresh;
	for (std::size_t q = 0; q < 10; ++q) {
		const SearchResult r = attached.search(row(queries, q, dim), params, fresh);
		EXPECT_EQ(std::vector<Neighbor>(r.neighbors.begin(), r.neighbors.end()), before[q]);
	}
	// The attached graph keeps growing.
	std::uint32_t id = 0;
	ASSERT_EQ(attached.insert(row(queries, 0, dim), 1, fresh, &id), HnswStatus::ok);
	EXPECT_EQ(id, n);
	params.max_generation = 1;
	EXPECT_EQ(attached.search(row(queries, 0, dim), params, fresh).neighbors[0].id, n);
}

TEST(HnswGraph, DestroyReturnsEveryByteToTheArena)
{
	Region region(16 << 20);
	const std::size_t used_before = region.arena.used_bytes();
	HnswGraph graph = make_graph(region, 8, Metric::l2, Encoding::sq8);
	ASSERT_EQ(graph.reserve(5000), HnswStatus::ok);
	SearchContext context;
	const auto base = random_vectors(300, 8, 81);
	for (std::uint32_t i = 0; i < 300; ++i)
		ASSERT_EQ(graph.insert(row(base, i, 8), 1, context), HnswStatus::ok);
	EXPECT_EQ(graph.memory_bytes(), region.arena.used_bytes() - used_before);
	EXPECT_LT(graph.used_bytes(), graph.memory_bytes()) << "5000 nodes reserved, 300 stored";
	EXPECT_GT(graph.used_bytes(), 300u * (64 + 64));
	graph.destroy();
	EXPECT_EQ(region.arena.used_bytes(), used_before);
}

TEST(HnswGraph, ReportsExhaustedArena)
{
	Region region(256 << 10);
	HnswGraph graph = make_graph(region, 64);
	const auto base = random_vectors(4000, 64, 91);
	const std::vector<std::uint64_t> generations(4000, 1);
	std::uint32_t first = 0;
	EXPECT_EQ(graph.append_batch(base, generations, first), HnswStatus::out_of_memory);
	EXPECT_EQ(graph.size(), 0u);
	EXPECT_EQ(graph.reserve(std::uint64_t{1} << 33), HnswStatus::too_many_nodes);
}

} // namespace
} // namespace engram::core
