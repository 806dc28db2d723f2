// Recall@10 against the exact ground truth of the real data sets, at the
// acceptance parameters M = 16, ef_construction = 64, ef_search = 64.
//
// Graphs are built on one thread, which makes every build (levels are a hash
// of the node id) and therefore every recall figure reproducible, so the
// thresholds can sit close to what the graph reaches without making the test
// flaky. Under a sanitizer only sift5k runs (the others would take minutes).
// glove100 does not reach 0.95 at ef 64 with M = 16 (engram reaches 0.915,
// hnswlib 0.887): even level-0 graphs built offline from almost exact
// neighbour lists reach only about 0.93 with 32 links per node, and 0.95 needs
// about 40 (see docs/benchmarks.md). Its test pins what engram reaches at ef 64
// and at ef 128 (0.959).
#include "support/fvecs.hpp"
#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <vector>

namespace engram::core {
namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool k_sanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr bool k_sanitized = true;
#else
constexpr bool k_sanitized = false;
#endif
#else
constexpr bool k_sanitized = false;
#endif

struct alignas(64) Line {
	std::byte b[64];
};

// The shared data sets are not part of the repository: without one, its
// tests skip with a message rather than fail.
#define SKIP_WITHOUT(name)                                                                                             \
	if (!std::filesystem::exists(std::filesystem::path(ENGRAM_DATA_DIR) / (name)))                                     \
	GTEST_SKIP() << (name) << " is not in " << ENGRAM_DATA_DIR

const float *
base_vector(const void *self, std::uint32_t id) noexcept
{
	return static_cast<const Dataset *>(self)->base.row(id).data();
}

class Recall {
public:
	Recall(const std::string &name, Metric metric, Encoding encoding)
	{
		const std::string error = load_dataset(ENGRAM_DATA_DIR, name, data_);
		EXPECT_EQ(error, "");
		const std::size_t n = data_.base.rows();
		const std::size_t bytes = (2 * n * (256 + 4 * std::size_t{data_.base.dim}) + (16u << 20)) & ~std::size_t{63};
		memory_.resize(bytes / sizeof(Line));
		arena_ = Arena::create(reinterpret_cast<std::byte *>(memory_.data()), bytes);
		HnswConfig config;
		config.dim = data_.base.dim;
		config.metric = metric;
		config.encoding = encoding;
		config.m = 16;
		config.ef_construction = 64;
		std::uint64_t offset = 0;
		EXPECT_EQ(HnswGraph::create(arena_, config, offset), HnswStatus::ok);
		graph_ = std::make_unique<HnswGraph>(arena_, offset);
		SearchContext context;
		context.reserve(*graph_, 64, n);
		for (std::size_t i = 0; i < n; ++i)
			EXPECT_EQ(graph_->insert(data_.base.row(i), 1, context), HnswStatus::ok);
	}

	double at(std::uint32_t ef, bool exact = false) const
	{
		const VectorSource source{&base_vector, &data_};
		SearchParams params;
		params.k = 10;
		params.ef = ef;
		params.rerank = &source;
		SearchContext context;
		const std::size_t queries = data_.query.rows();
		std::vector<std::uint32_t> found(queries * 10, k_no_node);
		for (std::size_t q = 0; q < queries; ++q) {
			const SearchResult r = exact ? graph_->exact_search(data_.query.row(q), params, 0, k_no_node, context)
										 : graph_->search(data_.query.row(q), params, context);
			EXPECT_EQ(r.status, HnswStatus::ok);
			for (std::size_t i = 0; i < r.neighbors.size(); ++i)
				found[q * 10 + i] = r.neighbors[i].id;
		}
		return recall_at_k(data_.truth, found, 10);
	}

private:
	Dataset data_;
	std::vector<Line> memory_;
	Arena arena_{nullptr};
	std::unique_ptr<HnswGraph> graph_;
};

TEST(Recall, Sift5kFloat32)
{
	SKIP_WITHOUT("sift5k");
	const Recall r("sift5k", Metric::l2, Encoding::float32);
	EXPECT_GE(r.at(64), 0.95);
	EXPECT_GE(r.at(64, true), 0.999) << "exact search agrees with the ground truth";
}

TEST(Recall, Sift5kFloat16Reranked)
{
	SKIP_WITHOUT("sift5k");
	const Recall r("sift5k", Metric::l2, Encoding::float16);
	EXPECT_GE(r.at(64), 0.95);
}

TEST(Recall, Sift5kSq8Reranked)
{
	SKIP_WITHOUT("sift5k");
	const Recall r("sift5k", Metric::l2, Encoding::sq8);
	EXPECT_GE(r.at(64), 0.95);
	EXPECT_GE(r.at(128), 0.98);
}

TEST(Recall, FashionMnist)
{
	if (k_sanitized)
		GTEST_SKIP() << "full-size data sets run in the normal build only";
	SKIP_WITHOUT("fashion-mnist");
	for (Encoding encoding : {Encoding::float32, Encoding::float16, Encoding::sq8}) {
		const Recall r("fashion-mnist", Metric::l2, encoding);
		EXPECT_GE(r.at(64), 0.99) << "encoding " << int(encoding);
	}
}

TEST(Recall, Glove100Cosine)
{
	if (k_sanitized)
		GTEST_SKIP() << "full-size data sets run in the normal build only";
	SKIP_WITHOUT("glove100");
	const Recall r("glove100", Metric::cosine, Encoding::float32);
	EXPECT_GE(r.at(64), 0.91);
	EXPECT_GE(r.at(128), 0.955);
	EXPECT_GE(r.at(64, true), 0.999) << "exact search agrees with the ground truth";
}

} // namespace
} // namespace engram::core
