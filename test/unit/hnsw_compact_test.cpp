// Compaction: the copy of a graph without its forgotten nodes is a valid
// graph (lists bounded, without duplicates, self links or removed ids, every
// node reachable from the entry point and found by a search for its own
// vector), carries every survivor's data, vector and link state, goes on
// growing (the unlinked tail is linked in the copy, new nodes too), is built
// while searches and linkers run on the old graph, fails on an exhausted
// arena without leaking or touching the old graph, takes over the commit
// stamps of rows not yet settled (counting only those it kept), and once the
// old graph is destroyed no byte of a forgotten vector is left anywhere in
// the arena.
#include "core/graph_file.hpp"
#include "core/hnsw_compact.hpp"
#include "core/hnsw_context.hpp"

#include <stdlib.h>

#include <gtest/gtest.h>

#include "heap_region.hpp"
#include "sanitizers.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace engram::core {
namespace {

using test_support::Region;
using test_support::random_vectors;

constexpr std::uint32_t k_dim = 16;
constexpr std::uint32_t k_nodes = test_support::k_sanitized ? 1200 : 4000;
// Compaction removes what was forgotten at or before the horizon; nodes are
// stored at generations below it, forgotten just below it (removed) or after
// it (kept, still visible to snapshots before that).
constexpr std::uint64_t k_horizon = 1'000'000;
constexpr std::uint64_t k_forgotten_before = k_horizon - 1;
constexpr std::uint64_t k_forgotten_after = k_horizon + 1;

struct Node {
	std::uint64_t generation;
	std::int64_t label;
	float confidence;
	std::int64_t observed_at;
	std::vector<std::uint64_t> tokens;
	std::uint64_t forgotten;
	std::uint32_t level;
	bool linked;
	std::vector<float> vector;
};

// A graph of k_dim-dimensional vectors in a heap region of its own.
class Fixture {
public:
	explicit Fixture(std::uint32_t m = 8, std::size_t bytes = std::size_t{64} << 20)
		: region(bytes), graph(region.arena, created(region.arena, m))
	{
	}

	static std::uint64_t created(Arena arena, std::uint32_t m)
	{
		HnswConfig config;
		config.dim = k_dim;
		config.m = m;
		config.ef_construction = 64;
		config.first_chunk_log2 = 6; // several chunks even in small graphs
		std::uint64_t offset = 0;
		EXPECT_EQ(HnswGraph::create(arena, config, offset), HnswStatus::ok);
		return offset;
	}

	// Appends n vectors (labels 7 + 3 id, generations 1 + id, other data
	// varying) and links the first `linked` of them on this thread.
	void build(std::uint32_t n, std::uint32_t linked, std::uint32_t seed = 1)
	{
		base = random_vectors(n, k_dim, seed);
		SearchContext context;
		for (std::uint32_t i = 0; i < n; ++i) {
			std::uint32_t id = 0;
			ASSERT_EQ(graph.append(vector(i), data(i, 7 + 3 * std::int64_t{i}), id), HnswStatus::ok);
			ASSERT_EQ(id, i);
			if (i < linked) {
				ASSERT_TRUE(graph.link(id, context));
			}
		}
	}

	// What node i carries besides its label: none, one or two tokens.
	NodeData data(std::uint32_t i, std::int64_t label)
	{
		tokens[0] = i % 3;
		tokens[1] = 100 + i % 7;
		return NodeData{1 + std::uint64_t{i}, label, 0.5f + static_cast<float>(i % 5) / 10, 1000 * std::int64_t{i},
						std::span<const std::uint64_t>(tokens).first(i % 3)};
	}

	std::span<const float> vector(std::uint32_t i) const
	{
		return std::span<const float>(base).subspan(std::size_t{i} * k_dim, k_dim);
	}

	void forget(std::uint32_t id, std::uint64_t generation = k_forgotten_before)
	{
		ASSERT_EQ(graph.forget_node(id, generation), ForgetResult::forgotten) << id;
	}

	// Forgets a random `fraction` of the nodes before the horizon; returns
	// every node compaction will remove, ascending.
	std::vector<std::uint32_t> forget_random(double fraction, std::uint32_t seed)
	{
		std::vector<std::uint32_t> ids(graph.size());
		std::iota(ids.begin(), ids.end(), 0u);
		std::shuffle(ids.begin(), ids.end(), std::mt19937(seed));
		ids.resize(static_cast<std::size_t>(fraction * static_cast<double>(ids.size())));
		for (const std::uint32_t id : ids)
			if (graph.forgotten(id) == k_never_forgotten)
				forget(id);
		return removed();
	}

	std::vector<std::uint32_t> removed() const
	{
		std::vector<std::uint32_t> ids;
		for (std::uint32_t id = 0; id < graph.size(); ++id)
			if (graph.forgotten(id) <= k_horizon)
				ids.push_back(id);
		return ids;
	}

	Node node(const HnswGraph &g, std::uint32_t id) const
	{
		const std::span<const std::uint64_t> t = g.tokens(id);
		Node n{g.generation(id), g.label(id), g.confidence(id), g.observed_at(id),        {t.begin(), t.end()},
			   g.forgotten(id),  g.level(id), g.is_linked(id),  std::vector<float>(k_dim)};
		g.stored_vector(id, n.vector);
		return n;
	}

	// The surviving nodes of the graph as they are now, in id order.
	std::vector<Node> survivors(const std::vector<std::uint32_t> &forgotten) const
	{
		std::vector<Node> out;
		for (std::uint32_t id = 0; id < graph.size(); ++id)
			if (!std::binary_search(forgotten.begin(), forgotten.end(), id))
				out.push_back(node(graph, id));
		return out;
	}

	HnswGraph compacted(CompactionStats *stats = nullptr, std::atomic<std::uint64_t> *nodes_copied = nullptr)
	{
		std::uint64_t offset = 0;
		EXPECT_EQ(compact(graph, k_horizon, offset, stats, nodes_copied), HnswStatus::ok);
		return HnswGraph(region.arena, offset);
	}

	Region region;
	HnswGraph graph;
	std::vector<float> base;
	std::uint64_t tokens[2] = {};
};

void
expect_same_nodes(const Fixture &f, const HnswGraph &copy, const std::vector<Node> &expected)
{
	ASSERT_EQ(copy.size(), expected.size());
	for (std::uint32_t id = 0; id < copy.size(); ++id) {
		const Node n = f.node(copy, id);
		const Node &e = expected[id];
		EXPECT_EQ(n.generation, e.generation) << id;
		EXPECT_EQ(n.label, e.label) << id;
		EXPECT_EQ(n.confidence, e.confidence) << id;
		EXPECT_EQ(n.observed_at, e.observed_at) << id;
		EXPECT_EQ(n.tokens, e.tokens) << id;
		EXPECT_EQ(n.forgotten, e.forgotten) << id;
		EXPECT_GT(n.forgotten, k_horizon) << id;
		EXPECT_EQ(n.level, e.level) << id;
		EXPECT_EQ(n.linked, e.linked) << id;
		EXPECT_EQ(n.vector, e.vector) << id;
	}
	// Each label names its newest surviving node.
	std::map<std::int64_t, std::uint32_t> newest;
	for (std::uint32_t id = 0; id < copy.size(); ++id)
		newest[copy.label(id)] = id;
	for (const auto &[label, id] : newest)
		EXPECT_EQ(copy.find_label(label), id) << label;
}

// Lists within bounds, without duplicates, self links, ids past the graph or
// ids of nodes without that level; the entry a linked node of the top level;
// every linked node reachable on level 0 and found by a search for its own
// vector.
void
expect_valid_graph(const HnswGraph &graph)
{
	const auto n = static_cast<std::uint32_t>(graph.size());
	std::vector<std::uint32_t> links(graph.m0());
	std::uint32_t top = 0, linked = 0;
	for (std::uint32_t id = 0; id < n; ++id) {
		if (graph.is_linked(id)) {
			top = std::max(top, graph.level(id));
			++linked;
		}
		for (std::uint32_t l = 0; l <= graph.level(id); ++l) {
			const std::uint32_t count = graph.neighbors(id, l, links);
			ASSERT_LE(count, l == 0 ? graph.m0() : graph.m()) << "node " << id << " level " << l;
			const std::set<std::uint32_t> distinct(links.begin(), links.begin() + count);
			EXPECT_EQ(distinct.size(), count) << "duplicate link at node " << id << " level " << l;
			EXPECT_EQ(distinct.count(id), 0u) << "self link at node " << id << " level " << l;
			for (std::uint32_t i = 0; i < count; ++i) {
				ASSERT_LT(links[i], n) << "node " << id << " level " << l;
				EXPECT_GE(graph.level(links[i]), l) << "node " << id << " links to a lower node";
			}
		}
	}
	EXPECT_EQ(graph.linked_count(), linked);
	if (linked == 0) {
		EXPECT_EQ(graph.entry_point(), k_no_node);
		return;
	}
	const std::uint32_t entry = graph.entry_point();
	ASSERT_LT(entry, n);
	EXPECT_TRUE(graph.is_linked(entry));
	EXPECT_EQ(graph.level(entry), top);
	EXPECT_EQ(graph.max_level(), top);
	std::vector<bool> seen(n, false);
	std::vector<std::uint32_t> stack{entry};
	seen[entry] = true;
	while (!stack.empty()) {
		const std::uint32_t id = stack.back();
		stack.pop_back();
		const std::uint32_t count = graph.neighbors(id, 0, links);
		for (std::uint32_t i = 0; i < count; ++i)
			if (!seen[links[i]]) {
				seen[links[i]] = true;
				stack.push_back(links[i]);
			}
	}
	SearchContext context;
	SearchParams params;
	params.k = 1;
	params.ef = 32;
	params.max_generation = k_horizon; // what was forgotten after it is still visible
	std::vector<float> v(graph.dim());
	std::uint32_t found = 0, visible = 0;
	for (std::uint32_t id = 0; id < n; ++id) {
		if (!graph.is_linked(id))
			continue;
		EXPECT_TRUE(seen[id]) << "linked node " << id << " is not reachable on level 0";
		// A node forgotten while it was being copied keeps its mark in the
		// copy, so the search at the horizon rightly does not return it.
		if (graph.forgotten(id) <= k_horizon)
			continue;
		++visible;
		graph.stored_vector(id, v);
		const SearchResult r = graph.search(v, params, context);
		found += !r.neighbors.empty() && r.neighbors[0].distance == 0.0f;
	}
	EXPECT_GE(found * 100, visible * 99) << "searches for a node's own vector find it";
}

class CompactionOf : public ::testing::TestWithParam<double> {};

TEST_P(CompactionOf, CopyKeepsTheSurvivorsAndEveryInvariant)
{
	Fixture f;
	f.build(k_nodes, k_nodes);
	// Updates: twenty labels are appended again with new vectors, their old
	// nodes forgotten before the horizon for half of them and after it for the
	// others (a snapshot before then still sees the old version).
	SearchContext context;
	const std::vector<float> updated = random_vectors(20, k_dim, 33);
	for (std::uint32_t i = 0; i < 20; ++i) {
		const std::uint32_t old = 1 + 50 * i;
		std::uint32_t id = 0;
		ASSERT_EQ(f.graph.append(std::span<const float>(updated).subspan(std::size_t{i} * k_dim, k_dim),
								 f.data(old, f.graph.label(old)), id),
				  HnswStatus::ok);
		ASSERT_TRUE(f.graph.link(id, context));
		f.forget(old, i < 10 ? k_forgotten_before : k_forgotten_after);
	}
	if (GetParam() > 0) {
		// The root of the level-0 tree (the first node linked) and the entry point go too.
		for (const std::uint32_t id : {0u, f.graph.entry_point()})
			if (f.graph.forgotten(id) == k_never_forgotten)
				f.forget(id);
	}
	const std::vector<std::uint32_t> forgotten = f.forget_random(GetParam(), 3);
	// Every 13th remaining node is forgotten after the horizon: it stays.
	std::uint64_t kept_forgotten = 0;
	for (std::uint32_t id = 0; id < f.graph.size(); id += 13)
		if (f.graph.forgotten(id) == k_never_forgotten) {
			f.forget(id, k_forgotten_after);
			++kept_forgotten;
		}
	const std::vector<Node> expected = f.survivors(forgotten);
	CompactionStats stats;
	std::atomic<std::uint64_t> nodes_copied{UINT64_MAX};
	const HnswGraph copy = f.compacted(&stats, &nodes_copied);
	EXPECT_EQ(stats.kept, expected.size());
	EXPECT_EQ(nodes_copied.load(), stats.kept) << "the progress reported ends at every node kept";
	EXPECT_EQ(stats.removed, forgotten.size());
	EXPECT_EQ(stats.bytes_before, f.graph.memory_bytes());
	EXPECT_EQ(stats.bytes_after, copy.memory_bytes());
	if (forgotten.empty()) {
		EXPECT_EQ(stats.repaired_lists, 0u);
		EXPECT_EQ(stats.reattached, 0u);
	} else {
		EXPECT_GT(stats.repaired_lists, 0u);
		EXPECT_GT(stats.reattached, 0u) << "the root went, so at least a new root was chosen";
	}
	expect_same_nodes(f, copy, expected);
	EXPECT_EQ(copy.forgotten_count(), kept_forgotten + 10);
	EXPECT_EQ(copy.linked_prefix(), copy.size());
	EXPECT_FALSE(copy.has_unclaimed());
	expect_valid_graph(copy);
	// A graph file of the copy reads back (its reader checks the tree and the
	// levels, which no longer follow the hash of the ids).
	std::string directory = (std::filesystem::temp_directory_path() / "engram-compact-XXXXXX").string();
	ASSERT_NE(::mkdtemp(directory.data()), nullptr);
	const std::filesystem::path file = std::filesystem::path(directory) / "graph";
	ASSERT_EQ(write_graph_file(copy, GraphFileIdentity{}, file), GraphFileStatus::ok);
	std::uint64_t read_offset = 0;
	const GraphFileStatus read = read_graph_file(f.region.arena, file, GraphFileIdentity{}, read_offset);
	std::filesystem::remove_all(directory);
	ASSERT_EQ(read, GraphFileStatus::ok);
	HnswGraph reread(f.region.arena, read_offset);
	expect_same_nodes(f, reread, expected);
	EXPECT_EQ(reread.entry_point(), copy.entry_point());
	reread.destroy();
	// The copy goes on growing: new nodes link into it.
	HnswGraph grown = copy;
	const std::vector<float> more = random_vectors(300, k_dim, 99);
	for (std::uint32_t i = 0; i < 300; ++i)
		ASSERT_EQ(grown.insert(std::span<const float>(more).subspan(std::size_t{i} * k_dim, k_dim), 1, context),
				  HnswStatus::ok);
	expect_valid_graph(grown);
}

INSTANTIATE_TEST_SUITE_P(Forgotten, CompactionOf, ::testing::Values(0.0, 0.1, 0.5, 0.9));

// Many copies of few points: pruning drops most copies from every list, so
// only the level-0 tree keeps them reachable, in the copy as in the original.
TEST(Compaction, DuplicatesStayReachableThroughTheRepairedTree)
{
	Fixture f(4);
	const std::vector<float> points = random_vectors(25, k_dim, 17);
	SearchContext context;
	for (std::uint32_t i = 0; i < 2000; ++i) {
		const std::uint32_t p = (i * 7919) % 25;
		ASSERT_EQ(f.graph.insert(std::span<const float>(points).subspan(std::size_t{p} * k_dim, k_dim), 1, context),
				  HnswStatus::ok);
	}
	f.forget(0); // the root
	for (std::uint32_t id = 1; id < 2000; id += 2)
		f.forget(id);
	if (f.graph.forgotten(f.graph.entry_point()) == k_never_forgotten)
		f.forget(f.graph.entry_point());
	CompactionStats stats;
	const HnswGraph copy = f.compacted(&stats);
	EXPECT_GT(stats.reattached, 100u);
	expect_valid_graph(copy);
}

TEST(Compaction, NothingForgottenCopiesListsAndResultsExactly)
{
	Fixture f;
	f.build(k_nodes, k_nodes);
	const HnswGraph copy = f.compacted();
	ASSERT_EQ(copy.size(), f.graph.size());
	EXPECT_EQ(copy.entry_point(), f.graph.entry_point());
	std::vector<std::uint32_t> a(f.graph.m0()), b(f.graph.m0());
	for (std::uint32_t id = 0; id < copy.size(); ++id)
		for (std::uint32_t l = 0; l <= copy.level(id); ++l) {
			const std::uint32_t n = f.graph.neighbors(id, l, a);
			ASSERT_EQ(copy.neighbors(id, l, b), n);
			EXPECT_TRUE(std::equal(a.begin(), a.begin() + n, b.begin())) << id;
		}
	SearchContext context;
	SearchParams params;
	const std::vector<float> queries = random_vectors(50, k_dim, 5);
	for (std::uint32_t q = 0; q < 50; ++q) {
		const std::span<const float> query(queries.data() + std::size_t{q} * k_dim, k_dim);
		const SearchResult before = f.graph.search(query, params, context);
		const std::vector<Neighbor> old(before.neighbors.begin(), before.neighbors.end());
		const SearchResult r = copy.search(query, params, context);
		EXPECT_TRUE(std::equal(old.begin(), old.end(), r.neighbors.begin(), r.neighbors.end())) << q;
	}
}

TEST(Compaction, UnlinkedTailStaysUnlinkedAndIsLinkedInTheCopy)
{
	Fixture f;
	const std::uint32_t linked = k_nodes * 3 / 4;
	f.build(k_nodes, linked);
	const std::vector<std::uint32_t> forgotten = f.forget_random(0.3, 11);
	const std::vector<Node> expected = f.survivors(forgotten);
	HnswGraph copy = f.compacted();
	expect_same_nodes(f, copy, expected);
	const auto first_unlinked = static_cast<std::uint64_t>(
		std::find_if(expected.begin(), expected.end(), [](const Node &n) { return !n.linked; }) - expected.begin());
	EXPECT_EQ(copy.linked_prefix(), first_unlinked);
	EXPECT_TRUE(copy.has_unclaimed());
	// Before it is linked, the tail is found by the exact part of a snapshot search.
	SearchContext context;
	SearchParams params;
	params.k = 1;
	const std::uint32_t tail = copy.size() - 1;
	std::vector<float> v(k_dim);
	copy.stored_vector(tail, v);
	ASSERT_EQ(copy.snapshot_search(v, params, context).neighbors.size(), 1u);
	EXPECT_EQ(copy.snapshot_search(v, params, context).neighbors[0].id, tail);
	std::uint32_t first = 0;
	std::uint32_t claimed = 0;
	for (std::uint32_t n; (n = copy.claim_unlinked(64, first)) != 0; claimed += n)
		for (std::uint32_t id = first; id < first + n; ++id)
			EXPECT_TRUE(copy.link(id, context)) << id;
	EXPECT_EQ(claimed, copy.size() - first_unlinked);
	EXPECT_EQ(copy.linked_prefix(), copy.size());
	EXPECT_EQ(copy.linked_count(), copy.size());
	expect_valid_graph(copy);
}

TEST(Compaction, CommitStampsMoveToTheCopyForItsKeptRows)
{
	Fixture f;
	const std::uint32_t linked = k_nodes / 2;
	f.build(k_nodes, linked);
	// A linked batch not settled yet, and the unlinked tail.
	f.graph.stamp_stored(linked, 100, commit_stamp_now());
	f.graph.stamp_stored(k_nodes, k_nodes - linked, commit_stamp_now());
	const std::vector<std::uint32_t> forgotten = f.forget_random(0.3, 5);
	const auto kept_in = [&](std::uint32_t from, std::uint32_t to) {
		std::uint64_t n = 0;
		for (std::uint32_t id = from; id < to; ++id)
			n += std::binary_search(forgotten.begin(), forgotten.end(), id) ? 0 : 1;
		return n;
	};
	HnswGraph copy = f.compacted();
	EXPECT_FALSE(f.graph.has_link_stamps());
	ASSERT_TRUE(copy.has_link_stamps());
	LatencyHistogram latency{};
	EXPECT_EQ(copy.settle_link_stamps(&latency), kept_in(linked - 100, linked));
	SearchContext context;
	std::uint32_t first = 0;
	for (std::uint32_t n; (n = copy.claim_unlinked(64, first)) != 0;)
		for (std::uint32_t id = first; id < first + n; ++id)
			ASSERT_TRUE(copy.link(id, context));
	EXPECT_EQ(copy.settle_link_stamps(&latency), kept_in(linked, k_nodes));
	EXPECT_EQ(latency.snapshot().count(), kept_in(linked - 100, k_nodes));
	EXPECT_FALSE(copy.has_link_stamps());
}

TEST(Compaction, EverythingForgottenOrOnlyTheTailLeftStartsAFreshGraph)
{
	Fixture f;
	f.build(600, 400);
	for (std::uint32_t id = 0; id < 400; ++id)
		f.forget(id);
	HnswGraph copy = f.compacted();
	ASSERT_EQ(copy.size(), 200u);
	EXPECT_EQ(copy.entry_point(), k_no_node);
	EXPECT_EQ(copy.linked_prefix(), 0u);
	SearchContext context;
	std::uint32_t first = 0;
	for (std::uint32_t n; (n = copy.claim_unlinked(64, first)) != 0;)
		for (std::uint32_t id = first; id < first + n; ++id)
			EXPECT_TRUE(copy.link(id, context));
	EXPECT_EQ(copy.linked_prefix(), copy.size());
	expect_valid_graph(copy);

	for (std::uint32_t id = 400; id < 600; ++id)
		f.forget(id);
	const HnswGraph empty = f.compacted();
	EXPECT_EQ(empty.size(), 0u);
	EXPECT_EQ(empty.entry_point(), k_no_node);
	EXPECT_EQ(empty.max_generation(), f.graph.max_generation()) << "how far the graph has taken in the space";
}

// Compaction reads the old graph while searchers search it and a linker
// links its tail in link turns, and a deleter marks more nodes; what was
// forgotten before the compaction began is never in the copy. Plain threads,
// so that ThreadSanitizer sees every access.
TEST(Compaction, RunsWhileTheOldGraphIsSearchedLinkedAndForgotten)
{
	Fixture f;
	const std::uint32_t n = test_support::k_sanitized ? 800 : 3000;
	f.build(n, n / 2);
	const std::vector<std::uint32_t> forgotten = f.forget_random(0.4, 21);
	std::atomic<bool> done{false};
	std::atomic<std::uint32_t> bad_results{0}, searches{0};
	std::vector<std::thread> threads;
	for (int t = 0; t < 2; ++t)
		threads.emplace_back([&, t] {
			SearchContext context;
			SearchParams params;
			params.k = 5;
			for (std::uint32_t q = 0; !done.load(std::memory_order_acquire) || q < 20; ++q) {
				const SearchResult r = f.graph.snapshot_search(f.vector((q * 7 + t) % n), params, context);
				for (const Neighbor &nb : r.neighbors)
					bad_results += std::binary_search(forgotten.begin(), forgotten.end(), nb.id);
				++searches;
			}
		});
	threads.emplace_back([&] {
		SearchContext context;
		while (!done.load(std::memory_order_acquire)) {
			const LinkTurn turn(f.graph);
			if (!turn) {
				std::this_thread::yield();
				continue;
			}
			std::uint32_t first = 0;
			const std::uint32_t claimed = f.graph.claim_unlinked(4, first);
			for (std::uint32_t id = first; id < first + claimed; ++id)
				f.graph.link(id, context);
			if (claimed == 0)
				std::this_thread::yield();
		}
	});
	threads.emplace_back([&] {
		for (std::uint32_t id = 1; id < n && !done.load(std::memory_order_acquire); id += 17)
			(void) f.graph.forget_node(id, k_forgotten_before);
	});
	while (searches.load() < 20)
		std::this_thread::yield();
	std::uint64_t offset = 0;
	const HnswStatus status = compact(f.graph, k_horizon, offset);
	done.store(true, std::memory_order_release);
	for (auto &t : threads)
		t.join();
	ASSERT_EQ(status, HnswStatus::ok);
	EXPECT_EQ(bad_results.load(), 0u);
	const HnswGraph copy(f.region.arena, offset);
	std::set<std::int64_t> forgotten_labels;
	for (const std::uint32_t id : forgotten)
		forgotten_labels.insert(f.graph.label(id));
	for (std::uint32_t id = 0; id < copy.size(); ++id)
		EXPECT_EQ(forgotten_labels.count(copy.label(id)), 0u) << "forgotten before compaction, yet copied";
	expect_valid_graph(copy);
}

TEST(Compaction, ExhaustedArenaFailsWithoutLeakingOrTouchingTheOldGraph)
{
	Fixture f(8, std::size_t{8} << 20);
	f.build(2000, 1800);
	f.forget_random(0.5, 4);
	SearchContext context;
	SearchParams params;
	params.k = 10;
	const auto results = [&] {
		std::vector<Neighbor> all;
		for (std::uint32_t q = 0; q < 40; ++q) {
			const SearchResult r = f.graph.snapshot_search(f.vector(q * 13), params, context);
			all.insert(all.end(), r.neighbors.begin(), r.neighbors.end());
		}
		return all;
	};
	const std::vector<Neighbor> before = results();
	const std::size_t used = f.region.arena.used_bytes();
	const std::size_t free = f.region.arena.capacity_bytes() - used;
	std::uint32_t failures = 0;
	bool compacted = false;
	for (std::size_t room = 0; room <= free && !compacted; room += std::size_t{16} << 10) {
		const std::size_t ballast_bytes = free - room;
		const std::uint64_t ballast = ballast_bytes == 0 ? 0 : f.region.arena.allocate(ballast_bytes);
		ASSERT_TRUE(ballast_bytes == 0 || ballast != 0);
		const std::size_t with_ballast = f.region.arena.used_bytes();
		std::uint64_t offset = 0;
		const HnswStatus status = compact(f.graph, k_horizon, offset);
		if (status == HnswStatus::ok) {
			compacted = true;
			HnswGraph(f.region.arena, offset).destroy();
		} else {
			ASSERT_EQ(status, HnswStatus::out_of_memory);
			++failures;
			EXPECT_EQ(f.region.arena.used_bytes(), with_ballast) << "a failed compaction leaked arena memory";
			EXPECT_EQ(results(), before) << "a failed compaction changed the old graph";
			EXPECT_EQ(f.graph.size(), 2000u);
			EXPECT_EQ(f.graph.linked_count(), 1800u);
			EXPECT_FALSE(f.graph.links_frozen()) << "a failed compaction left the links frozen";
		}
		f.region.arena.release(ballast, ballast_bytes);
	}
	EXPECT_TRUE(compacted);
	EXPECT_GT(failures, 3u);
	EXPECT_EQ(f.region.arena.used_bytes(), used);
}

// Every 8-byte window of the arena is compared with the first 8 bytes of
// each vector; windows that match are compared in full.
std::size_t
copies_in_arena(const Region &region, const std::vector<std::vector<float>> &vectors)
{
	std::unordered_set<std::uint64_t> prefixes;
	for (const auto &v : vectors) {
		std::uint64_t p;
		std::memcpy(&p, v.data(), sizeof p);
		prefixes.insert(p);
	}
	const auto *bytes = reinterpret_cast<const std::byte *>(region.lines.data());
	const std::size_t size = region.lines.size() * sizeof(test_support::Line);
	const std::size_t vector_bytes = k_dim * sizeof(float);
	std::size_t copies = 0;
	for (std::size_t at = 0; at + vector_bytes <= size; ++at) {
		std::uint64_t window;
		std::memcpy(&window, bytes + at, sizeof window);
		if (prefixes.count(window) == 0)
			continue;
		for (const auto &v : vectors)
			copies += std::memcmp(bytes + at, v.data(), vector_bytes) == 0;
	}
	return copies;
}

TEST(Compaction, ForgottenVectorsAreNowhereInTheArenaOnceTheOldGraphIsDestroyed)
{
	Fixture f(8, std::size_t{8} << 20);
	f.build(2000, 2000);
	const std::vector<std::uint32_t> forgotten = f.forget_random(0.5, 8);
	std::vector<std::vector<float>> gone, kept;
	for (std::uint32_t id = 0; id < f.graph.size(); ++id) {
		const std::span<const float> v = f.vector(id);
		(std::binary_search(forgotten.begin(), forgotten.end(), id) ? gone : kept).emplace_back(v.begin(), v.end());
	}
	EXPECT_EQ(copies_in_arena(f.region, gone), gone.size()) << "the search finds vectors that are there";
	const HnswGraph copy = f.compacted();
	EXPECT_EQ(copies_in_arena(f.region, gone), gone.size()) << "the old graph still holds them";
	f.graph.destroy();
	EXPECT_EQ(copies_in_arena(f.region, gone), 0u);
	EXPECT_EQ(copies_in_arena(f.region, kept), kept.size()) << "survivors live on in the copy, once each";
	EXPECT_EQ(copy.size(), kept.size());
}

} // namespace
} // namespace engram::core
