// exact_distances gives what a double-precision computation gives, in the
// graph's conventions for every metric (squared l2, 1 - dot, 1 - cosine
// without normalising either side), leaves a candidate without a vector at
// its old distance, and agrees with what a float32 graph reports, so that
// re-ranked and graph distances can be compared.
#include "core/rerank.hpp"

#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace engram::core {
namespace {

struct alignas(64) Line {
	std::byte b[64];
};

std::vector<float>
random_vector(std::mt19937 &rng, std::size_t dim)
{
	std::normal_distribution<float> normal(0.0f, 1.0f);
	std::vector<float> v(dim);
	for (float &x : v)
		x = normal(rng);
	return v;
}

double
reference(Metric metric, const std::vector<float> &q, const std::vector<float> &v)
{
	double l2 = 0, dot = 0, qq = 0, vv = 0;
	for (std::size_t i = 0; i < q.size(); ++i) {
		l2 += (double(q[i]) - v[i]) * (double(q[i]) - v[i]);
		dot += double(q[i]) * v[i];
		qq += double(q[i]) * q[i];
		vv += double(v[i]) * v[i];
	}
	if (metric == Metric::l2)
		return l2;
	if (metric == Metric::inner_product)
		return 1 - dot;
	return 1 - dot / std::sqrt(qq * vv);
}

TEST(Rerank, ExactDistancesInEveryMetric)
{
	std::mt19937 rng(7);
	constexpr std::size_t dim = 771; // not a multiple of any SIMD width
	const std::vector<float> query = random_vector(rng, dim);
	std::vector<std::vector<float>> rows;
	for (int i = 0; i < 9; ++i)
		rows.push_back(random_vector(rng, dim));
	for (Metric metric : {Metric::l2, Metric::inner_product, Metric::cosine}) {
		std::vector<const float *> vectors;
		std::vector<float> distances;
		for (std::size_t i = 0; i < rows.size(); ++i) {
			vectors.push_back(i == 4 ? nullptr : rows[i].data());
			distances.push_back(-42.0f);
		}
		exact_distances(metric, query, vectors, distances);
		for (std::size_t i = 0; i < rows.size(); ++i) {
			if (i == 4) {
				EXPECT_EQ(distances[i], -42.0f) << "a candidate without a vector keeps its distance";
				continue;
			}
			const double want = reference(metric, query, rows[i]);
			EXPECT_NEAR(distances[i], want, 1e-4 * std::max(1.0, std::abs(want)))
				<< "metric " << int(metric) << " row " << i;
		}
	}
}

TEST(Rerank, ZeroVectorUnderCosineIsAtDistanceOne)
{
	const std::vector<float> query{1.0f, 2.0f, 3.0f};
	const std::vector<float> zero(3, 0.0f);
	const float *vectors[] = {zero.data()};
	float distances[] = {0.0f};
	exact_distances(Metric::cosine, query, vectors, distances);
	EXPECT_EQ(distances[0], 1.0f);
}

// A float32 cosine graph normalises both sides; exact_distances must give the
// same numbers from the raw vectors.
TEST(Rerank, AgreesWithAFloat32Graph)
{
	std::mt19937 rng(11);
	constexpr std::uint32_t dim = 64;
	std::vector<Line> memory((8u << 20) / sizeof(Line));
	const Arena arena = Arena::create(reinterpret_cast<std::byte *>(memory.data()), memory.size() * sizeof(Line));
	HnswConfig config;
	config.dim = dim;
	config.metric = Metric::cosine;
	std::uint64_t offset = 0;
	ASSERT_EQ(HnswGraph::create(arena, config, offset), HnswStatus::ok);
	HnswGraph graph(arena, offset);
	SearchContext context;
	std::vector<std::vector<float>> rows;
	for (int i = 0; i < 200; ++i) {
		rows.push_back(random_vector(rng, dim));
		ASSERT_EQ(graph.insert(rows.back(), 1, context), HnswStatus::ok);
	}
	const std::vector<float> query = random_vector(rng, dim);
	SearchParams params;
	params.k = 10;
	const SearchResult result = graph.exact_search(query, params, 0, k_no_node, context);
	ASSERT_EQ(result.neighbors.size(), 10u);
	for (const Neighbor &n : result.neighbors) {
		const float *vectors[] = {rows[n.id].data()};
		float distances[] = {0.0f};
		exact_distances(Metric::cosine, query, vectors, distances);
		EXPECT_NEAR(distances[0], n.distance, 1e-5f);
	}
}

} // namespace
} // namespace engram::core
