// Node lifecycle and attributes: forgetting per generation, the label table
// (through growth and re-labels), attribute tokens across chunk ends,
// reserve()'s promise that appends cannot fail, the attribute token hash,
// and appends, forgets and searches on one graph at once (ThreadSanitizer
// checks the last one in the tsan suite).
#include "core/attribute_token.hpp"
#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"

#include <gtest/gtest.h>

#include "heap_region.hpp"
#include "sanitizers.hpp"

#include <algorithm>
#include <atomic>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

using test_support::Region;
using test_support::random_vectors;

constexpr std::uint32_t k_dim = 8;

HnswGraph
make_graph(Region &region, std::uint32_t first_chunk_log2 = 4)
{
	HnswConfig config;
	config.dim = k_dim;
	config.m = 8;
	config.ef_construction = 48;
	config.first_chunk_log2 = first_chunk_log2;
	std::uint64_t offset = 0;
	EXPECT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	return HnswGraph(region.arena, offset);
}

std::span<const float>
row(const std::vector<float> &v, std::size_t i)
{
	return std::span<const float>(v).subspan(i * k_dim, k_dim);
}

std::set<std::uint32_t>
ids_of(const SearchResult &r)
{
	std::set<std::uint32_t> ids;
	for (const Neighbor &n : r.neighbors)
		ids.insert(n.id);
	return ids;
}

// Every node of a small graph, searched three ways at one snapshot.
void
expect_visible(const HnswGraph &graph, std::uint64_t snapshot, const std::set<std::uint32_t> &want,
			   SearchContext &context)
{
	SearchParams params;
	params.k = static_cast<std::uint32_t>(graph.size());
	params.ef = params.k;
	params.max_generation = snapshot;
	const std::vector<float> query(k_dim, 0.5f);
	EXPECT_EQ(ids_of(graph.search(query, params, context)), want) << "graph search at " << snapshot;
	EXPECT_EQ(ids_of(graph.exact_search(query, params, 0, k_no_node, context)), want) << "exact at " << snapshot;
	EXPECT_EQ(ids_of(graph.snapshot_search(query, params, context)), want) << "snapshot at " << snapshot;
}

TEST(HnswForget, HidesANodeFromItsGenerationOnAndEarlierSnapshotsStillSeeIt)
{
	Region region(8 << 20);
	HnswGraph graph = make_graph(region);
	const auto base = random_vectors(40, k_dim, 1);
	SearchContext context;
	for (std::uint32_t i = 0; i < 40; ++i) {
		std::uint32_t id = 0;
		ASSERT_EQ(graph.append(row(base, i), NodeData{1 + i % 4, 500 + std::int64_t{i}}, id), HnswStatus::ok);
		ASSERT_TRUE(graph.link(id, context));
	}
	EXPECT_EQ(graph.forgotten_count(), 0u);
	EXPECT_EQ(graph.forget(500 + 6, 7), ForgetResult::forgotten); // generation 3, hidden from 7 on
	EXPECT_EQ(graph.forget(500 + 9, 1), ForgetResult::forgotten); // generation 2: never visible
	EXPECT_EQ(graph.forget(500 + 6, 9), ForgetResult::already_forgotten);
	EXPECT_EQ(graph.forget(499, 9), ForgetResult::not_found);
	EXPECT_EQ(graph.forgotten(6), 7u);
	EXPECT_EQ(graph.forgotten(9), 2u) << "no earlier than the node's own generation";
	EXPECT_EQ(graph.forgotten(7), k_never_forgotten);
	EXPECT_EQ(graph.forgotten_count(), 2u);
	for (std::uint64_t snapshot : {0ull, 1ull, 2ull, 3ull, 4ull, 6ull, 7ull, 8ull, 100ull, ~0ull}) {
		std::set<std::uint32_t> want;
		for (std::uint32_t i = 0; i < 40; ++i)
			if (1 + i % 4 <= snapshot && !(i == 9) && !(i == 6 && snapshot >= 7))
				want.insert(i);
		expect_visible(graph, snapshot, want, context);
	}
}

TEST(HnswForget, AnUpdateForgetsTheOldNodeAndRelabelsTheNewOne)
{
	Region region(8 << 20);
	HnswGraph graph = make_graph(region);
	const auto base = random_vectors(3, k_dim, 2);
	SearchContext context;
	std::uint32_t old_id = 0, new_id = 0, other = 0;
	ASSERT_EQ(graph.append(row(base, 0), NodeData{1, 42}, old_id), HnswStatus::ok);
	ASSERT_EQ(graph.append(row(base, 1), NodeData{1, 43}, other), HnswStatus::ok);
	EXPECT_EQ(graph.find_label(42), std::optional<std::uint32_t>(old_id));
	// The update of observation 42 commits at generation 5: forget, then append.
	ASSERT_EQ(graph.forget(42, 5), ForgetResult::forgotten);
	ASSERT_EQ(graph.append(row(base, 2), NodeData{5, 42}, new_id), HnswStatus::ok);
	for (std::uint32_t id : {old_id, other, new_id})
		ASSERT_TRUE(graph.link(id, context));
	EXPECT_EQ(graph.find_label(42), std::optional<std::uint32_t>(new_id)) << "the newest node of a label";
	EXPECT_EQ(graph.find_label(43), std::optional<std::uint32_t>(other));
	EXPECT_EQ(graph.find_label(44), std::nullopt);
	expect_visible(graph, 4, {old_id, other}, context);
	expect_visible(graph, 5, {new_id, other}, context);
	// A later delete of 42 hides the new node only.
	ASSERT_EQ(graph.forget(42, 8), ForgetResult::forgotten);
	EXPECT_EQ(graph.forgotten(new_id), 8u);
	EXPECT_EQ(graph.forgotten(old_id), 5u);
	expect_visible(graph, 7, {new_id, other}, context);
	expect_visible(graph, 8, {other}, context);
	EXPECT_EQ(graph.forget(42, 9), ForgetResult::already_forgotten);
}

TEST(HnswForget, FastPathRunsOnlyWhileNoForgottenNodeIsHidden)
{
	// Forgotten from generation 50 on, with every node stored at 1: snapshots
	// before 50 may take the unfiltered search and must still see everything;
	// those at or after 50 must not see the node. Checked on the node nearest
	// to the query, which every search finds.
	Region region(8 << 20);
	HnswGraph graph = make_graph(region);
	const auto base = random_vectors(300, k_dim, 3);
	SearchContext context;
	for (std::uint32_t i = 0; i < 300; ++i)
		ASSERT_EQ(graph.insert(row(base, i), 1, context), HnswStatus::ok);
	SearchParams params;
	params.k = 1;
	params.ef = 32;
	ASSERT_EQ(graph.forget_node(17, 50), ForgetResult::forgotten);
	for (std::uint64_t snapshot : {1ull, 49ull}) {
		params.max_generation = snapshot;
		const SearchResult r = graph.search(row(base, 17), params, context);
		ASSERT_EQ(r.neighbors.size(), 1u);
		EXPECT_EQ(r.neighbors[0].id, 17u) << snapshot;
	}
	for (std::uint64_t snapshot : {50ull, 51ull, ~0ull}) {
		params.max_generation = snapshot;
		const SearchResult r = graph.search(row(base, 17), params, context);
		ASSERT_EQ(r.neighbors.size(), 1u);
		EXPECT_NE(r.neighbors[0].id, 17u) << snapshot;
	}
	// A second forget at an earlier generation lowers the bound of the fast path.
	ASSERT_EQ(graph.forget_node(18, 10), ForgetResult::forgotten);
	params.max_generation = 20;
	const SearchResult r = graph.search(row(base, 18), params, context);
	ASSERT_EQ(r.neighbors.size(), 1u);
	EXPECT_NE(r.neighbors[0].id, 18u);
}

TEST(HnswLabels, FindTheNewestNodeOfEveryLabelThroughGrowthAndRelabels)
{
	Region region(64 << 20);
	HnswGraph graph = make_graph(region);
	constexpr std::uint32_t n = 20000;
	const auto base = random_vectors(1, k_dim, 4);
	std::mt19937_64 rng(5);
	std::map<std::int64_t, std::uint32_t> newest;
	std::vector<std::int64_t> labels;
	const std::size_t before = graph.memory_bytes();
	std::vector<NodeData> batch;
	std::vector<float> vectors;
	for (std::uint32_t i = 0; i < n;) {
		// Batches of 1 to 64; a quarter of the labels are re-used (updates),
		// the others random 64-bit values including the extremes.
		const std::uint32_t size = std::min<std::uint32_t>(n - i, 1 + rng() % 64);
		batch.clear();
		vectors.clear();
		for (std::uint32_t j = 0; j < size; ++j) {
			std::int64_t label;
			if (!labels.empty() && rng() % 4 == 0)
				label = labels[rng() % labels.size()];
			else if (i + j == 1)
				label = std::numeric_limits<std::int64_t>::min();
			else if (i + j == 2)
				label = std::numeric_limits<std::int64_t>::max();
			else
				label = static_cast<std::int64_t>(rng());
			labels.push_back(label);
			newest[label] = i + j;
			batch.push_back(NodeData{1, label});
			vectors.insert(vectors.end(), base.begin(), base.end());
		}
		std::uint32_t first = 0;
		ASSERT_EQ(graph.append_batch(vectors, batch, first), HnswStatus::ok);
		ASSERT_EQ(first, i);
		i += size;
	}
	for (const auto &[label, id] : newest)
		ASSERT_EQ(graph.find_label(label), std::optional<std::uint32_t>(id)) << label;
	std::size_t absent = 0;
	for (int probe = 0; probe < 1000; ++probe) {
		const auto label = static_cast<std::int64_t>(rng());
		if (!newest.contains(label))
			absent += graph.find_label(label) == std::nullopt;
		else
			++absent;
	}
	EXPECT_EQ(absent, 1000u);
	EXPECT_GT(graph.memory_bytes(), before);
	EXPECT_LE(graph.used_bytes(), graph.memory_bytes());
	// Nothing of the replaced tables stays allocated.
	graph.destroy();
	EXPECT_EQ(region.arena.used_bytes(), 0u);
}

TEST(HnswAttributes, TokensRoundTripSortedAndUniqueAcrossChunkEnds)
{
	Region region(64 << 20);
	HnswGraph graph = make_graph(region);
	const auto base = random_vectors(1, k_dim, 6);
	std::mt19937_64 rng(7);
	constexpr std::uint32_t n = 600;
	std::vector<std::vector<std::uint64_t>> given(n);
	for (std::uint32_t i = 0; i < n; ++i) {
		// Sizes up to k_max_node_tokens, many near it, so that runs meet the
		// ends of the (1024-element) first chunks; duplicates and any order.
		const std::uint32_t size = i % 5 == 0 ? k_max_node_tokens - static_cast<std::uint32_t>(rng() % 8)
											  : static_cast<std::uint32_t>(rng() % 300);
		for (std::uint32_t t = 0; t < size; ++t)
			given[i].push_back(t % 7 == 3 && t > 0 ? given[i][t / 2] : rng() % 100000);
		std::uint32_t id = 0;
		ASSERT_EQ(graph.append(row(base, 0), NodeData{1, i, 1.0f, -1000 * std::int64_t{i}, given[i]}, id),
				  HnswStatus::ok);
	}
	for (std::uint32_t i = 0; i < n; ++i) {
		std::vector<std::uint64_t> want = given[i];
		std::sort(want.begin(), want.end());
		want.erase(std::unique(want.begin(), want.end()), want.end());
		const std::span<const std::uint64_t> got = graph.tokens(i);
		ASSERT_EQ(std::vector<std::uint64_t>(got.begin(), got.end()), want) << i;
		EXPECT_EQ(graph.observed_at(i), -1000 * std::int64_t{i});
	}
	EXPECT_LE(graph.used_bytes(), graph.memory_bytes());
}

TEST(HnswAttributes, MoreTokensThanANodeMayHoldAreRefusedAndStoreNothing)
{
	Region region(8 << 20);
	HnswGraph graph = make_graph(region);
	const auto base = random_vectors(2, k_dim, 8);
	std::vector<std::uint64_t> tokens(k_max_node_tokens + 1, 1);
	std::uint32_t id = 0;
	EXPECT_EQ(graph.append(row(base, 0), NodeData{1, 1, 1.0f, 0, tokens}, id), HnswStatus::too_many_tokens);
	EXPECT_STREQ(to_string(HnswStatus::too_many_tokens), "too many attribute tokens for one node");
	const std::vector<NodeData> data{NodeData{1, 1}, NodeData{1, 2, 1.0f, 0, tokens}};
	EXPECT_EQ(graph.append_batch(base, data, id), HnswStatus::too_many_tokens);
	EXPECT_EQ(graph.size(), 0u);
	EXPECT_EQ(graph.find_label(1), std::nullopt);
	tokens.pop_back();
	EXPECT_EQ(graph.append(row(base, 0), NodeData{1, 1, 1.0f, 0, tokens}, id), HnswStatus::ok);
	EXPECT_EQ(graph.tokens(id).size(), 1u) << "1024 copies of one token";
}

TEST(HnswAttributes, AppendsAfterAReserveCannotFailEvenWithTheArenaFull)
{
	Region region(32 << 20);
	HnswGraph graph = make_graph(region);
	const auto base = random_vectors(1, k_dim, 9);
	constexpr std::uint32_t n = 3000;
	std::mt19937_64 rng(10);
	std::vector<std::vector<std::uint64_t>> tokens(n);
	std::uint64_t total = 0;
	for (auto &t : tokens) {
		t.resize(rng() % 2 == 0 ? rng() % 16 : k_max_node_tokens - rng() % 100);
		for (auto &x : t)
			x = rng();
		total += t.size();
	}
	ASSERT_EQ(graph.reserve(n, graph.token_slots() + total), HnswStatus::ok);
	// Take every byte the arena has left.
	std::vector<std::pair<std::uint64_t, std::size_t>> taken;
	for (const std::size_t bytes : {std::size_t{4096}, k_arena_unit})
		for (std::uint64_t offset; (offset = region.arena.allocate(bytes)) != 0;)
			taken.emplace_back(offset, bytes);
	ASSERT_FALSE(taken.empty());
	for (std::uint32_t i = 0; i < n; ++i) {
		std::uint32_t id = 0;
		ASSERT_EQ(graph.append(row(base, 0), NodeData{1, 7 * std::int64_t{i}, 1.0f, 0, tokens[i]}, id), HnswStatus::ok)
			<< i;
	}
	for (std::uint32_t i = 0; i < n; i += 97)
		ASSERT_EQ(graph.find_label(7 * std::int64_t{i}), std::optional<std::uint32_t>(i));
	// Past the reservation the arena is what it is: a failed append stores nothing.
	std::vector<std::uint64_t> more(k_max_node_tokens, 0);
	std::iota(more.begin(), more.end(), 0);
	std::uint32_t id = 0;
	for (std::uint32_t i = 0; i < 64; ++i) {
		const HnswStatus s = graph.append(row(base, 0), NodeData{1, -1 - std::int64_t{i}, 1.0f, 0, more}, id);
		if (s != HnswStatus::ok) {
			EXPECT_EQ(s, HnswStatus::out_of_memory);
			EXPECT_EQ(graph.size(), n + i);
			EXPECT_EQ(graph.find_label(-1 - std::int64_t{i}), std::nullopt);
			break;
		}
	}
	for (const auto &[offset, bytes] : taken)
		region.arena.release(offset, bytes);
}

TEST(AttributeToken, IsTheDocumentedHashAndSeparatesItsParts)
{
	// FNV-1a 64 over (kind, key length in bytes as 8 little-endian bytes, key, value),
	// then the MurmurHash3 finaliser: computed independently of this code.
	EXPECT_EQ(attribute_token("", AttributeKind::object, ""), 0xf51ec3dabc2c4015ULL);
	EXPECT_EQ(attribute_token("user", AttributeKind::scalar, "u42"), 0xfbd1b514bbe5331dULL);
	EXPECT_EQ(attribute_token("tags", AttributeKind::element, "\"a\""), 0xcbc7eda4afa70275ULL);
	EXPECT_EQ(attribute_token("tags", AttributeKind::array, ""), 0xb08605714064e11dULL);
	EXPECT_EQ(attribute_token("ключ", AttributeKind::scalar, "значение"), 0xcd9a41c058f61a27ULL);
	std::set<std::uint64_t> distinct;
	for (AttributeKind kind :
		 {AttributeKind::object, AttributeKind::scalar, AttributeKind::element, AttributeKind::array}) {
		distinct.insert(attribute_token("ab", kind, "c"));
		distinct.insert(attribute_token("a", kind, "bc"));
		distinct.insert(attribute_token("abc", kind, ""));
	}
	EXPECT_EQ(distinct.size(), 12u);
}

TEST(HnswForget, AppendsForgetsLinksAndSearchesAtOnce)
{
	// One appender (labels 1000 + i, generation i + 1, tokens), one linker,
	// one forgetter (forgets published labels at random generations) and two
	// searchers, some with a token or time filter. A search returns only
	// stored nodes its snapshot and filter may see: generation <= G, not
	// forgotten at or before G by a forget that returned before the search
	// began, and holding the filter's token or inside its window.
	const std::uint32_t n = test_support::k_sanitized ? 1500 : 12000;
	Region region(64 << 20);
	HnswGraph graph = make_graph(region);
	const auto base = random_vectors(n, k_dim, 11);
	const auto queries = random_vectors(32, k_dim, 12);
	std::vector<std::atomic<std::uint64_t>> forgotten_at(n); // 0: not forgotten (yet)
	std::vector<std::atomic<std::uint64_t>> forgotten_seq(n);
	std::atomic<std::uint64_t> forgets{0};
	std::atomic<std::uint32_t> appended{0};
	std::atomic<bool> done{false};
	std::atomic<std::uint64_t> violations{0}, searches{0};
	std::vector<std::thread> threads;
	threads.emplace_back([&] {
		std::vector<std::uint64_t> tokens;
		for (std::uint32_t i = 0; i < n; ++i) {
			tokens.assign(i % 9, i % 11);
			tokens.push_back(i);
			std::uint32_t id = 0;
			ASSERT_EQ(graph.append(row(base, i), NodeData{i + 1ull, 1000 + std::int64_t{i}, 1.0f, i, tokens}, id),
					  HnswStatus::ok);
			appended.store(i + 1, std::memory_order_release);
		}
	});
	threads.emplace_back([&] {
		SearchContext context;
		std::uint32_t first = 0;
		for (;;) {
			const bool finished = appended.load() == n;
			const std::uint32_t got = graph.claim_unlinked(16, first);
			for (std::uint32_t id = first; id < first + got; ++id)
				graph.link(id, context);
			if (got == 0 && finished)
				break;
			if (got == 0)
				std::this_thread::yield();
		}
	});
	threads.emplace_back([&] {
		std::mt19937 rng(13);
		while (!done.load()) {
			const std::uint32_t stored = appended.load(std::memory_order_acquire);
			if (stored == 0)
				continue;
			const std::uint32_t i = rng() % stored;
			const std::uint64_t at = rng() % (n + 2);
			const ForgetResult r = graph.forget(1000 + std::int64_t{i}, at);
			if (r == ForgetResult::not_found)
				violations.fetch_add(1);
			if (r == ForgetResult::forgotten) {
				forgotten_at[i].store(std::max<std::uint64_t>(at, i + 1));
				forgotten_seq[i].store(forgets.fetch_add(1) + 1);
			}
			std::this_thread::yield();
		}
	});
	for (int s = 0; s < 2; ++s) {
		threads.emplace_back([&, s] {
			SearchContext context;
			std::mt19937 rng(14 + s);
			for (std::size_t q = 0; !done.load(); ++q) {
				SearchParams params;
				params.k = 10;
				params.ef = 32;
				params.max_generation = rng() % 3 == 0 ? ~0ull : rng() % (n + 2);
				const std::uint64_t seen = forgets.load();
				const std::span<const float> query(queries.data() + (q % 32) * k_dim, k_dim);
				// Every third search filters on a token (held by about a tenth of the nodes) or a time window.
				const std::uint64_t wanted = q % 11;
				AttributeFilter filter{std::span<const std::uint64_t>(&wanted, 1)};
				if (q % 2 == 0) {
					filter.tokens = {};
					filter.observed_after = static_cast<std::int64_t>(rng() % n);
					filter.observed_before = filter.observed_after + 500;
				}
				params.filter = q % 3 == 0 ? &filter : nullptr;
				const SearchResult r = q % 2 ? graph.snapshot_search(query, params, context)
											 : graph.search(query, params, context);
				searches.fetch_add(1);
				for (const Neighbor &nb : r.neighbors) {
					const std::uint64_t at = forgotten_at[nb.id].load();
					const std::uint64_t sequence = forgotten_seq[nb.id].load();
					const bool hidden = at != 0 && sequence != 0 && sequence <= seen && at <= params.max_generation;
					if (nb.id >= graph.size() || graph.generation(nb.id) > params.max_generation || hidden)
						violations.fetch_add(1);
					// Attributes of a returned node are readable while others append.
					const auto tokens = graph.tokens(nb.id);
					if (tokens.empty() || tokens.back() != nb.id || graph.observed_at(nb.id) != nb.id)
						violations.fetch_add(1);
					const std::int64_t t = graph.observed_at(nb.id);
					const bool passes = filter.tokens.empty()
											? t >= filter.observed_after && t < filter.observed_before
											: std::binary_search(tokens.begin(), tokens.end(), wanted);
					if (params.filter != nullptr && !passes)
						violations.fetch_add(1);
				}
				const std::uint32_t stored = appended.load(std::memory_order_acquire);
				if (stored > 0 && graph.find_label(1000 + static_cast<std::int64_t>(rng() % stored)) == std::nullopt)
					violations.fetch_add(1);
			}
		});
	}
	threads[0].join();
	threads[1].join();
	done.store(true);
	for (std::size_t t = 2; t < threads.size(); ++t)
		threads[t].join();
	EXPECT_EQ(violations.load(), 0u);
	EXPECT_GT(searches.load(), 0u);
	EXPECT_GT(forgets.load(), 0u);
	EXPECT_EQ(graph.forgotten_count(), forgets.load());
	for (std::uint32_t i = 0; i < n; ++i)
		ASSERT_EQ(graph.forgotten(i), forgotten_at[i].load() == 0 ? k_never_forgotten : forgotten_at[i].load());
}

} // namespace
} // namespace engram::core
