// Filtered search and scoring against a brute-force model: on random graphs
// (some nodes unlinked, some forgotten, random tokens, times, generations
// and confidences) snapshot_search under random filters returns exactly
// min(k, matching nodes) distinct matching nodes, nearest first, and
// exact_search returns the true filtered top k; the score formula, and
// ranking by it over the widened candidate set.
#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"
#include "core/scoring.hpp"

#include <gtest/gtest.h>

#include "heap_region.hpp"
#include "sanitizers.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <vector>

namespace engram::core {
namespace {

using test_support::Region;
using test_support::random_vectors;

constexpr std::uint32_t k_dim = 8;
constexpr std::uint64_t k_vocabulary = 12;

// Everything the model knows about one node.
struct ModelNode {
	std::uint64_t generation;
	std::uint64_t forgotten = k_never_forgotten;
	float confidence;
	std::int64_t observed_at;
	std::vector<std::uint64_t> tokens; // sorted, unique
};

struct Model {
	std::vector<float> vectors;
	std::vector<ModelNode> nodes;

	bool matches(std::uint32_t id, const SearchParams &params) const
	{
		const ModelNode &n = nodes[id];
		if (n.generation > params.max_generation || n.confidence < params.min_confidence ||
			(n.forgotten != k_never_forgotten && n.forgotten <= params.max_generation))
			return false;
		const AttributeFilter *f = params.filter;
		if (f == nullptr)
			return true;
		return n.observed_at >= f->observed_after && n.observed_at < f->observed_before &&
			   std::includes(n.tokens.begin(), n.tokens.end(), f->tokens.begin(), f->tokens.end());
	}
	double distance(std::span<const float> q, std::uint32_t id) const
	{
		double d = 0.0;
		for (std::uint32_t j = 0; j < k_dim; ++j) {
			const double x = double(q[j]) - vectors[std::size_t{id} * k_dim + j];
			d += x * x;
		}
		return d;
	}
	// Matching ids, nearest first.
	std::vector<std::uint32_t> ranked(std::span<const float> q, const SearchParams &params) const
	{
		std::vector<std::pair<double, std::uint32_t>> all;
		for (std::uint32_t id = 0; id < nodes.size(); ++id)
			if (matches(id, params))
				all.emplace_back(distance(q, id), id);
		std::sort(all.begin(), all.end());
		std::vector<std::uint32_t> ids;
		for (const auto &a : all)
			ids.push_back(a.second);
		return ids;
	}
};

// A random graph of n nodes, the first `linked` of them linked.
HnswGraph
random_graph(Region &region, Model &model, std::uint32_t n, std::uint32_t linked, std::mt19937_64 &rng)
{
	HnswConfig config;
	config.dim = k_dim;
	config.m = 6;
	config.ef_construction = 40;
	config.first_chunk_log2 = 4;
	std::uint64_t offset = 0;
	EXPECT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	HnswGraph graph(region.arena, offset);
	model.vectors = random_vectors(n, k_dim, static_cast<std::uint32_t>(rng()));
	model.nodes.assign(n, ModelNode{});
	std::vector<NodeData> data(n);
	for (std::uint32_t i = 0; i < n; ++i) {
		ModelNode &m = model.nodes[i];
		m.generation = 1 + rng() % 10;
		m.confidence = static_cast<float>(rng() % 5) / 4;
		m.observed_at = static_cast<std::int64_t>(rng() % 1000) - 500;
		// Token t is held by about one node in t + 1 (and given twice sometimes).
		for (std::uint64_t t = 0; t < k_vocabulary; ++t)
			if (rng() % (t + 1) == 0)
				m.tokens.push_back(t * 0x9e3779b97f4a7c15ULL);
		std::vector<std::uint64_t> given = m.tokens;
		if (!given.empty() && rng() % 3 == 0)
			given.push_back(given.front());
		std::shuffle(given.begin(), given.end(), rng);
		std::sort(m.tokens.begin(), m.tokens.end());
		data[i] = NodeData{m.generation, i, m.confidence, m.observed_at, {}};
		std::uint32_t id = 0;
		data[i].tokens = given;
		EXPECT_EQ(graph.append(std::span<const float>(model.vectors).subspan(std::size_t{i} * k_dim, k_dim), data[i],
							   id),
				  HnswStatus::ok);
	}
	SearchContext context;
	for (std::uint32_t i = 0; i < linked; ++i)
		EXPECT_TRUE(graph.link(i, context));
	for (std::uint32_t i = 0; i < n; ++i) {
		if (rng() % 6 != 0)
			continue;
		const std::uint64_t at = rng() % 12;
		EXPECT_EQ(graph.forget(i, at), ForgetResult::forgotten);
		model.nodes[i].forgotten = std::max(at, model.nodes[i].generation);
	}
	return graph;
}

TEST(FilteredSearch, NeverComesBackShortOfMatchingNodesOnRandomGraphs)
{
	const int graphs = test_support::k_sanitized ? 6 : 24;
	std::mt19937_64 rng(2024);
	std::size_t found = 0, wanted = 0, searches = 0, empty_filters = 0;
	std::size_t walked = 0, scanned = 0; // filtered searches answered by a graph walk, by the exact scan alone
	for (int g = 0; g < graphs; ++g) {
		const auto n = static_cast<std::uint32_t>(20 + rng() % (g % 3 == 0 ? 6000 : 800));
		const auto linked = static_cast<std::uint32_t>(rng() % 3 == 0 ? n : rng() % (n + 1));
		Region region(64 << 20);
		Model model;
		HnswGraph graph = random_graph(region, model, n, linked, rng);
		SearchContext context;
		const auto queries = random_vectors(30, k_dim, static_cast<std::uint32_t>(rng()));
		for (std::uint32_t q = 0; q < 30; ++q) {
			std::vector<std::uint64_t> tokens;
			for (int t = static_cast<int>(rng() % 3); t > 0; --t)
				tokens.push_back((rng() % k_vocabulary) * 0x9e3779b97f4a7c15ULL);
			std::sort(tokens.begin(), tokens.end());
			tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
			AttributeFilter filter{tokens};
			const bool windowed = rng() % 3 == 0;
			if (windowed) {
				filter.observed_after = static_cast<std::int64_t>(rng() % 1000) - 500;
				filter.observed_before = filter.observed_after + static_cast<std::int64_t>(rng() % 600);
			}
			SearchParams params;
			params.k = 1 + static_cast<std::uint32_t>(rng() % 40);
			params.ef = params.k + static_cast<std::uint32_t>(rng() % 100);
			params.max_generation = rng() % 4 == 0 ? k_never_forgotten : rng() % 12;
			params.min_confidence = rng() % 4 == 0 ? 0.5f : -std::numeric_limits<float>::infinity();
			params.filter = rng() % 5 == 0 ? nullptr : &filter;
			const std::span<const float> query(queries.data() + std::size_t{q} * k_dim, k_dim);
			const std::vector<std::uint32_t> truth = model.ranked(query, params);
			const std::size_t want = std::min<std::size_t>(params.k, truth.size());
			empty_filters += truth.empty() ? 1 : 0;

			const SearchResult r = graph.snapshot_search(query, params, context);
			ASSERT_EQ(r.status, HnswStatus::ok);
			ASSERT_EQ(r.neighbors.size(), want) << "graph " << g << " query " << q;
			std::set<std::uint32_t> distinct;
			for (const Neighbor &nb : r.neighbors) {
				ASSERT_TRUE(model.matches(nb.id, params)) << nb.id;
				ASSERT_TRUE(distinct.insert(nb.id).second) << nb.id;
			}
			ASSERT_TRUE(std::is_sorted(r.neighbors.begin(), r.neighbors.end()));
			if (params.filter != nullptr && (!tokens.empty() || windowed)) {
				walked += r.stats.expanded > 0 ? 1 : 0;
				scanned += r.stats.expanded == 0 ? 1 : 0;
			}
			const std::set<std::uint32_t> best(truth.begin(), truth.begin() + static_cast<std::ptrdiff_t>(want));
			for (const Neighbor &nb : r.neighbors)
				found += best.count(nb.id);
			wanted += want;
			++searches;

			// The exact scan is the model's top k (up to ties within rounding).
			const SearchResult e = graph.exact_search(query, params, 0, k_no_node, context);
			ASSERT_EQ(e.neighbors.size(), want);
			if (want > 0) {
				const double kth = model.distance(query, truth[want - 1]);
				for (const Neighbor &nb : e.neighbors) {
					ASSERT_TRUE(model.matches(nb.id, params));
					ASSERT_LE(model.distance(query, nb.id), kth + 1e-4);
				}
			}
		}
	}
	EXPECT_GT(walked, 0u) << "some filtered searches walk the graph";
	EXPECT_GT(scanned, 0u) << "some filtered searches scan";
	EXPECT_GT(empty_filters, 0u) << "some filters match nothing";
	EXPECT_LT(empty_filters, searches / 2) << "most filters match something";
	EXPECT_GE(double(found) / double(wanted), 0.97) << found << " of " << wanted;
}

TEST(FilteredSearch, AFilterThatAsksNothingKeepsTheUnfilteredResults)
{
	std::mt19937_64 rng(7);
	Region region(32 << 20);
	Model model;
	HnswGraph graph = random_graph(region, model, 1500, 1500, rng);
	SearchContext context;
	const auto queries = random_vectors(20, k_dim, 8);
	const AttributeFilter nothing{};
	for (std::uint32_t q = 0; q < 20; ++q) {
		const std::span<const float> query(queries.data() + std::size_t{q} * k_dim, k_dim);
		SearchParams plain;
		plain.max_generation = 11;
		const SearchResult a = graph.snapshot_search(query, plain, context);
		const std::vector<Neighbor> want(a.neighbors.begin(), a.neighbors.end());
		SearchParams filtered = plain;
		filtered.filter = &nothing;
		const SearchResult b = graph.snapshot_search(query, filtered, context);
		EXPECT_EQ(std::vector<Neighbor>(b.neighbors.begin(), b.neighbors.end()), want);
	}
}

TEST(Scoring, SimilarityAndScoreFollowTheDocumentedFormula)
{
	EXPECT_FLOAT_EQ(similarity(Metric::l2, 0.0f), 1.0f);
	EXPECT_FLOAT_EQ(similarity(Metric::l2, 9.0f), 0.25f) << "of the squared distance";
	EXPECT_FLOAT_EQ(similarity(Metric::cosine, 0.25f), 0.75f);
	EXPECT_FLOAT_EQ(similarity(Metric::cosine, 1.5f), 0.0f);
	EXPECT_FLOAT_EQ(similarity(Metric::inner_product, -2.0f), 1.0f);
	const Scoring none{};
	EXPECT_FLOAT_EQ(score(Metric::cosine, 0.2f, 0.1f, 5, none), 0.8f) << "without weights the score is s";
	const Scoring confident{1.0f, 0, 0};
	EXPECT_FLOAT_EQ(score(Metric::cosine, 0.2f, 0.5f, 5, confident), 0.4f);
	const Scoring half{0.5f, 0, 0};
	EXPECT_FLOAT_EQ(score(Metric::cosine, 0.2f, 0.5f, 5, half), 0.8f * 0.75f);
	const Scoring recent{0.0f, 10.0, 100};
	EXPECT_FLOAT_EQ(score(Metric::l2, 1.0f, 1.0f, 90, recent), 0.25f) << "one half-life old";
	EXPECT_FLOAT_EQ(score(Metric::l2, 1.0f, 1.0f, 70, recent), 0.0625f) << "three half-lives old";
	EXPECT_FLOAT_EQ(score(Metric::l2, 1.0f, 1.0f, 150, recent), 0.5f) << "from the future counts as new";
	const Scoring extreme{0.0f, 1.0, std::numeric_limits<std::int64_t>::max()};
	const float oldest = score(Metric::l2, 0.0f, 1.0f, std::numeric_limits<std::int64_t>::min(), extreme);
	EXPECT_EQ(oldest, 0.0f);
}

TEST(Scoring, RanksTheWidenedCandidatesByScore)
{
	// A filter that every node passes makes a graph this small answer by the
	// exact scan, so the model's ranking is the answer: the max(ef, 8k)
	// nearest matching nodes, ordered by score.
	std::mt19937_64 rng(9);
	Region region(32 << 20);
	Model model;
	constexpr std::uint32_t n = 400;
	HnswGraph graph = random_graph(region, model, n, n, rng);
	SearchContext context;
	const auto queries = random_vectors(20, k_dim, 10);
	AttributeFilter everything;
	everything.observed_after = -10000;
	for (std::uint32_t q = 0; q < 20; ++q) {
		const std::span<const float> query(queries.data() + std::size_t{q} * k_dim, k_dim);
		const Scoring scoring{0.25f * static_cast<float>(q % 5), q % 2 == 0 ? 0.0 : 150.0, 400};
		SearchParams params;
		params.k = 1 + q % 12;
		params.ef = q % 3 == 0 ? 200 : params.k;
		params.scoring = &scoring;
		params.filter = &everything;
		const std::vector<std::uint32_t> ranked = model.ranked(query, params);
		const std::size_t widened =
			std::min<std::size_t>(std::max<std::size_t>(params.ef, 8 * params.k), ranked.size());
		std::vector<std::pair<float, std::uint32_t>> want;
		for (std::size_t i = 0; i < widened; ++i) {
			const std::uint32_t id = ranked[i];
			const auto d = static_cast<float>(model.distance(query, id));
			want.emplace_back(-score(Metric::l2, d, model.nodes[id].confidence, model.nodes[id].observed_at, scoring),
							  id);
		}
		std::stable_sort(want.begin(), want.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
		const SearchResult r = graph.snapshot_search(query, params, context);
		ASSERT_EQ(r.status, HnswStatus::ok);
		ASSERT_EQ(r.neighbors.size(), std::min<std::size_t>(params.k, want.size()));
		float previous = std::numeric_limits<float>::infinity();
		for (std::size_t i = 0; i < r.neighbors.size(); ++i) {
			const Neighbor &nb = r.neighbors[i];
			const float s = score(Metric::l2, nb.distance, graph.confidence(nb.id), graph.observed_at(nb.id), scoring);
			EXPECT_LE(s, previous) << "highest score first";
			previous = s;
			EXPECT_NEAR(s, -want[i].first, 1e-5) << "query " << q << " rank " << i;
		}
	}
}

TEST(Scoring, ANewerOrSurerNeighbourOvertakesANearerOne)
{
	Region region(8 << 20);
	HnswConfig config;
	config.dim = 2;
	config.metric = Metric::cosine;
	std::uint64_t offset = 0;
	ASSERT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	HnswGraph graph(region.arena, offset);
	SearchContext context;
	const std::vector<float> old_near{1.0f, 0.05f}, new_far{1.0f, 0.3f}, query{1.0f, 0.0f};
	std::uint32_t a = 0, b = 0;
	ASSERT_EQ(graph.append(old_near, NodeData{1, 1, 0.2f, 0}, a), HnswStatus::ok);
	ASSERT_EQ(graph.append(new_far, NodeData{1, 2, 1.0f, 1000}, b), HnswStatus::ok);
	ASSERT_TRUE(graph.link(a, context));
	ASSERT_TRUE(graph.link(b, context));
	SearchParams params;
	params.k = 2;
	SearchResult r = graph.snapshot_search(query, params, context);
	ASSERT_EQ(r.neighbors.size(), 2u);
	EXPECT_EQ(r.neighbors[0].id, a) << "by distance";
	const Scoring recency{0.0f, 100.0, 1000};
	params.scoring = &recency;
	r = graph.snapshot_search(query, params, context);
	ASSERT_EQ(r.neighbors.size(), 2u);
	EXPECT_EQ(r.neighbors[0].id, b) << "ten half-lives make the old one fade";
	EXPECT_GT(r.neighbors[0].distance, r.neighbors[1].distance) << "distances stay what they are";
	const Scoring confidence{1.0f, 0.0, 0};
	params.scoring = &confidence;
	r = graph.snapshot_search(query, params, context);
	EXPECT_EQ(r.neighbors[0].id, b) << "confidence 0.2 against 1.0";
}

} // namespace
} // namespace engram::core
