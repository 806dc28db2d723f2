// Filtered recall on real data: glove100 (100,000 x 100-d, cosine) built at
// m 16, ef_construction 200, with metadata tokens that select 50%, 10%, 1%
// and 0.1% of the rows and 10,000 tenants of about ten rows each. For every
// query and filter, snapshot_search at the default ef (128) must return
// exactly min(10, matching rows) rows with recall@10 >= 0.95 against the
// exact filtered truth (brute force in double precision over the data set).
// The figures of each way snapshot_search can take (graph walk, exact scan)
// are printed beside, for tuning; nothing here times anything for a verdict.
// Skipped when the data set is absent, and under a sanitizer (minutes).
#include "support/fvecs.hpp"
#include "support/hnsw_batch.hpp"
#include "core/attribute_token.hpp"
#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"

#include <gtest/gtest.h>

#include "sanitizers.hpp"

#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace engram::core {
namespace {

struct alignas(64) Line {
	std::byte b[64];
};

constexpr std::uint32_t k_k = 10;
constexpr std::uint32_t k_tenants = 10000;

std::uint64_t
mix(std::uint64_t x) noexcept
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

// The filters: a share of rows in thousandths (or a tenant), and its token.
struct Selection {
	const char *name;
	std::uint64_t per_100000; // rows that carry the token, per 100,000
	std::uint64_t token;
};

const std::vector<Selection> &
selections()
{
	static const std::vector<Selection> all{
		{"50%", 50000, attribute_token("share", AttributeKind::scalar, "50")},
		{"10%", 10000, attribute_token("share", AttributeKind::scalar, "10")},
		{"1%", 1000, attribute_token("share", AttributeKind::scalar, "1")},
		{"0.1%", 100, attribute_token("share", AttributeKind::scalar, "0.1")},
	};
	return all;
}

std::uint64_t
tenant_token(std::uint64_t tenant)
{
	return attribute_token("user", AttributeKind::scalar, "u" + std::to_string(tenant));
}

// Each row's tokens: one per selection it falls in (independently drawn) and its tenant.
std::vector<std::uint64_t>
row_tokens(std::uint64_t row)
{
	std::vector<std::uint64_t> tokens{tenant_token(mix(row * 8 + 7) % k_tenants)};
	const auto &all = selections();
	for (std::size_t s = 0; s < all.size(); ++s)
		if (mix(row * 8 + s) % 100000 < all[s].per_100000)
			tokens.push_back(all[s].token);
	return tokens;
}

class FilteredGlove {
public:
	FilteredGlove()
	{
		error_ = load_dataset(ENGRAM_DATA_DIR, "glove100", data_);
		if (!error_.empty())
			return;
		const std::size_t n = data_.base.rows();
		const std::size_t bytes = (n * (512 + 4 * std::size_t{data_.base.dim}) + (64u << 20)) & ~std::size_t{63};
		memory_.resize(bytes / sizeof(Line));
		arena_ = Arena::create(reinterpret_cast<std::byte *>(memory_.data()), bytes);
		HnswConfig config;
		config.dim = data_.base.dim;
		config.metric = Metric::cosine;
		config.m = 16;
		config.ef_construction = 200;
		std::uint64_t offset = 0;
		EXPECT_EQ(HnswGraph::create(arena_, config, offset), HnswStatus::ok);
		graph_ = std::make_unique<HnswGraph>(arena_, offset);
		tokens_.resize(n);
		std::vector<NodeData> rows(n);
		for (std::size_t i = 0; i < n; ++i) {
			tokens_[i] = row_tokens(i);
			rows[i] = NodeData{1, static_cast<std::int64_t>(i), 1.0f, 0, tokens_[i]};
		}
		std::uint32_t first = 0;
		EXPECT_EQ(graph_->append_batch(data_.base.values, rows, first), HnswStatus::ok);
		tbb::task_arena threads(2);
		threads.execute([&] {
			HnswContextPool pool;
			link_range(*graph_, 0, static_cast<std::uint32_t>(n), pool);
		});
		EXPECT_EQ(graph_->linked_count(), n);
	}

	const std::string &error() const { return error_; }
	const Dataset &data() const { return data_; }
	const HnswGraph &graph() const { return *graph_; }
	bool holds(std::size_t row, std::uint64_t token) const
	{
		return std::find(tokens_[row].begin(), tokens_[row].end(), token) != tokens_[row].end();
	}

private:
	std::string error_;
	Dataset data_;
	std::vector<Line> memory_;
	Arena arena_{nullptr};
	std::unique_ptr<HnswGraph> graph_;
	std::vector<std::vector<std::uint64_t>> tokens_;
};

// The exact filtered top k of one query, by cosine in double precision.
std::vector<std::uint32_t>
exact_truth(const FilteredGlove &g, std::span<const float> query, std::uint64_t token)
{
	const Matrix<float> &base = g.data().base;
	std::vector<std::pair<double, std::uint32_t>> scored;
	for (std::uint32_t i = 0; i < base.rows(); ++i) {
		if (!g.holds(i, token))
			continue;
		double dot = 0.0;
		const auto v = base.row(i);
		for (std::uint32_t j = 0; j < base.dim; ++j)
			dot += double(query[j]) * v[j];
		scored.emplace_back(-dot, i);
	}
	const std::size_t k = std::min<std::size_t>(k_k, scored.size());
	std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k), scored.end());
	std::vector<std::uint32_t> ids;
	for (std::size_t i = 0; i < k; ++i)
		ids.push_back(scored[i].second);
	return ids;
}

struct Outcome {
	double recall = 0.0;
	std::size_t short_answers = 0; // fewer rows than min(k, matches)
	double qps = 0.0;
};

// Runs one way of searching over every query, each with its own filter token.
template <typename Search>
Outcome
measure(const FilteredGlove &g, const std::vector<std::uint64_t> &tokens,
		const std::vector<std::vector<std::uint32_t>> &truth, Search search)
{
	SearchContext context;
	const std::size_t queries = tokens.size();
	std::size_t found = 0, wanted = 0;
	Outcome outcome;
	const auto start = std::chrono::steady_clock::now();
	for (std::size_t q = 0; q < queries; ++q) {
		const AttributeFilter filter{std::span<const std::uint64_t>(&tokens[q], 1)};
		SearchParams params;
		params.k = k_k;
		params.ef = 128;
		params.filter = &filter;
		const SearchResult r = search(g.data().query.row(q), params, context);
		EXPECT_EQ(r.status, HnswStatus::ok);
		outcome.short_answers += r.neighbors.size() < truth[q].size() ? 1 : 0;
		for (const Neighbor &n : r.neighbors)
			found += std::count(truth[q].begin(), truth[q].end(), n.id);
		wanted += truth[q].size();
	}
	const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
	outcome.recall = wanted == 0 ? 1.0 : double(found) / double(wanted);
	outcome.qps = double(queries) / seconds;
	return outcome;
}

TEST(FilteredRecall, Glove100AtEverySelectivityAndTenThousandTenants)
{
	if (test_support::k_sanitized)
		GTEST_SKIP() << "full-size data sets run in the normal build only";
	if (!std::filesystem::exists(std::string(ENGRAM_DATA_DIR) + "/glove100/glove100_base.fvecs"))
		GTEST_SKIP() << "glove100 is absent from " << ENGRAM_DATA_DIR;
	const FilteredGlove g;
	ASSERT_EQ(g.error(), "");
	const std::size_t queries = g.data().query.rows();
	std::vector<std::pair<std::string, std::vector<std::uint64_t>>> cases;
	for (const Selection &s : selections())
		cases.emplace_back(s.name, std::vector<std::uint64_t>(queries, s.token));
	std::vector<std::uint64_t> tenants(queries);
	for (std::size_t q = 0; q < queries; ++q)
		tenants[q] = tenant_token(mix(q * 31 + 5) % k_tenants);
	cases.emplace_back("one of 10,000 tenants", tenants);
	for (const auto &[name, tokens] : cases) {
		std::vector<std::vector<std::uint32_t>> truth(queries);
		for (std::size_t q = 0; q < queries; ++q)
			truth[q] = exact_truth(g, g.data().query.row(q), tokens[q]);
		const Outcome recall = measure(g, tokens, truth, [&](auto query, const SearchParams &p, SearchContext &c) {
			return g.graph().snapshot_search(query, p, c);
		});
		const Outcome walk = measure(g, tokens, truth, [&](auto query, const SearchParams &p, SearchContext &c) {
			return g.graph().search(query, p, c);
		});
		const Outcome scan = measure(g, tokens, truth, [&](auto query, const SearchParams &p, SearchContext &c) {
			return g.graph().exact_search(query, p, 0, k_no_node, c);
		});
		std::printf("filter %-22s snapshot_search recall %.4f %8.0f QPS | graph walk %.4f %8.0f QPS | exact scan "
					"%.4f %8.0f QPS\n",
					name.c_str(), recall.recall, recall.qps, walk.recall, walk.qps, scan.recall, scan.qps);
		EXPECT_GE(recall.recall, 0.95) << name;
		EXPECT_EQ(recall.short_answers, 0u) << name;
		EXPECT_GE(scan.recall, 0.999) << name << ": the exact scan agrees with the brute force";
	}
}

} // namespace
} // namespace engram::core
