// Concurrent linking and searching on one graph: after 1, 2, 4 or 8 threads
// insert at once, the graph's invariants hold (every node linked and
// reachable from the entry point, degrees within bounds, no self or
// duplicate links, links only to nodes of at least the same level), and
// searches that run during insertion and deletion return only nodes that
// their snapshot may see. Links that fail half-way (an injected
// std::bad_alloc) release what they hold and are linked again later. Run
// under ThreadSanitizer these tests also check that readers and writers
// never race (the suite shrinks its sizes there).
#include "core/fault_injection.hpp"
#include "support/hnsw_batch.hpp"

#include <gtest/gtest.h>

#include "heap_region.hpp"
#include "sanitizers.hpp"

#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <new>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

using test_support::Region;
using test_support::random_vectors;

using test_support::k_sanitized;
using test_support::k_thread_sanitizer;

constexpr std::uint32_t k_dim = 16;
constexpr std::uint32_t k_nodes = k_sanitized ? 1000 : 20000;

HnswGraph
make_graph(Region &region, std::uint32_t m)
{
	HnswConfig config;
	config.dim = k_dim;
	config.m = m;
	config.ef_construction = 48;
	config.first_chunk_log2 = 4; // many chunks: capacity grows while threads read
	std::uint64_t offset = 0;
	EXPECT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	return HnswGraph(region.arena, offset);
}

// Inserts base (n vectors end to end) from `threads` std::threads at once.
void
insert_concurrently(HnswGraph &graph, const std::vector<float> &base, int threads)
{
	const auto n = static_cast<std::uint32_t>(base.size() / k_dim);
	std::atomic<std::uint32_t> next{0};
	std::vector<std::thread> workers;
	for (int t = 0; t < threads; ++t) {
		workers.emplace_back([&] {
			SearchContext context;
			for (std::uint32_t i; (i = next.fetch_add(1)) < n;) {
				const std::span<const float> v(base.data() + std::size_t{i} * k_dim, k_dim);
				ASSERT_EQ(graph.insert(v, 1, context), HnswStatus::ok);
			}
		});
	}
	for (auto &w : workers)
		w.join();
}

// Checks every structural invariant of a quiescent graph.
void
expect_graph_invariants(const HnswGraph &graph, std::uint64_t expected_nodes)
{
	const auto n = static_cast<std::uint32_t>(graph.size());
	ASSERT_EQ(n, expected_nodes);
	EXPECT_EQ(graph.linked_prefix(), n);
	std::vector<std::uint32_t> links(graph.m0());
	std::uint32_t top = 0;
	for (std::uint32_t id = 0; id < n; ++id) {
		EXPECT_TRUE(graph.is_linked(id)) << id;
		top = std::max(top, graph.level(id));
		for (std::uint32_t l = 0; l <= graph.level(id); ++l) {
			const std::uint32_t count = graph.neighbors(id, l, links);
			ASSERT_LE(count, l == 0 ? graph.m0() : graph.m()) << "node " << id << " level " << l;
			std::set<std::uint32_t> distinct(links.begin(), links.begin() + count);
			EXPECT_EQ(distinct.size(), count) << "duplicate link at node " << id << " level " << l;
			EXPECT_EQ(distinct.count(id), 0u) << "self link at node " << id << " level " << l;
			for (std::uint32_t i = 0; i < count; ++i) {
				ASSERT_LT(links[i], n);
				EXPECT_GE(graph.level(links[i]), l) << "node " << id << " links to a lower node";
			}
		}
	}
	const std::uint32_t entry = graph.entry_point();
	ASSERT_LT(entry, n);
	EXPECT_EQ(graph.max_level(), top);
	EXPECT_EQ(graph.level(entry), top);
	// Every node is reachable from the entry point (level 0 holds every node).
	std::vector<bool> seen(n, false);
	std::vector<std::uint32_t> stack{entry};
	seen[entry] = true;
	std::uint32_t reached = 1;
	while (!stack.empty()) {
		const std::uint32_t id = stack.back();
		stack.pop_back();
		const std::uint32_t count = graph.neighbors(id, 0, links);
		for (std::uint32_t i = 0; i < count; ++i) {
			if (!seen[links[i]]) {
				seen[links[i]] = true;
				++reached;
				stack.push_back(links[i]);
			}
		}
	}
	EXPECT_EQ(reached, n);
	// And a search for a (not deleted) node's own vector finds it.
	SearchContext context;
	SearchParams params;
	params.k = 1;
	params.ef = 32;
	std::vector<float> v(graph.dim());
	std::uint32_t found = 0, probes = 0;
	for (std::uint32_t id = 0; id < n; id += 7) {
		if (graph.forgotten(id) != k_never_forgotten)
			continue;
		++probes;
		graph.stored_vector(id, v);
		const SearchResult r = graph.search(v, params, context);
		found += !r.neighbors.empty() && r.neighbors[0].distance == 0.0f;
	}
	EXPECT_GE(found * 100, probes * 99);
}

class ConcurrentInsert : public ::testing::TestWithParam<int> {};

TEST_P(ConcurrentInsert, GraphInvariantsHoldAfterParallelInsertion)
{
	const int threads = GetParam();
	Region region(64 << 20);
	HnswGraph graph = make_graph(region, 8);
	const auto base = random_vectors(k_nodes, k_dim, 100 + threads);
	insert_concurrently(graph, base, threads);
	expect_graph_invariants(graph, k_nodes);
}

INSTANTIATE_TEST_SUITE_P(Threads, ConcurrentInsert, ::testing::Values(1, 2, 4, 8));

TEST(HnswConcurrency, LinkersSharingClaimsLinkEveryNodeWhileOneThreadAppends)
{
	// The worker pool's pattern: one drainer appends while linkers claim
	// batches of unlinked ids and link them.
	Region region(256 << 20);
	HnswGraph graph = make_graph(region, 8);
	const auto base = test_support::random_vectors(k_nodes, k_dim, 77);
	std::atomic<bool> appending{true};
	std::thread appender([&] {
		constexpr std::uint32_t batch = 37;
		for (std::uint32_t i = 0; i < k_nodes; i += batch) {
			const std::uint32_t n = std::min(batch, k_nodes - i);
			std::vector<NodeData> data(n);
			for (std::uint32_t j = 0; j < n; ++j)
				data[j] = NodeData{1, std::int64_t{i} + j, 0.5f};
			std::uint32_t first = 0;
			ASSERT_EQ(graph.append_batch(std::span<const float>(base).subspan(std::size_t{i} * k_dim,
																			  std::size_t{n} * k_dim),
										 data, first),
					  HnswStatus::ok);
			ASSERT_EQ(first, i);
		}
		appending = false;
	});
	std::atomic<std::uint64_t> claimed{0};
	std::vector<std::thread> linkers;
	for (int t = 0; t < 3; ++t) {
		linkers.emplace_back([&] {
			SearchContext context;
			for (;;) {
				const bool more = appending.load();
				std::uint32_t first = 0;
				const std::uint32_t n = graph.claim_unlinked(16, first);
				claimed += n;
				for (std::uint32_t id = first; id < first + n; ++id)
					EXPECT_TRUE(graph.link(id, context)) << id;
				if (n == 0 && !more)
					return;
			}
		});
	}
	appender.join();
	for (auto &l : linkers)
		l.join();
	EXPECT_EQ(claimed.load(), k_nodes);
	EXPECT_EQ(graph.linked_count(), k_nodes);
	for (std::uint32_t id = 0; id < k_nodes; id += 101)
		EXPECT_EQ(graph.label(id), id);
	expect_graph_invariants(graph, k_nodes);
}

TEST(HnswConcurrency, DuplicateVectorsStayReachable)
{
	// Many copies of few points: pruning would drop most copies from every
	// list; the spanning tree keeps each one reachable.
	Region region(32 << 20);
	HnswGraph graph = make_graph(region, 4);
	const std::uint32_t n = k_sanitized ? 600 : 3000;
	const auto points = random_vectors(5, k_dim, 150);
	std::vector<float> base;
	for (std::uint32_t i = 0; i < n; ++i)
		base.insert(base.end(), points.begin() + (i % 5) * k_dim, points.begin() + (i % 5 + 1) * k_dim);
	insert_concurrently(graph, base, 4);
	expect_graph_invariants(graph, n);
}

TEST(HnswConcurrency, BatchInsertWithTbbKeepsInvariants)
{
	SKIP_UNDER_TSAN_WITH_TBB();
	Region region(64 << 20);
	HnswGraph graph = make_graph(region, 16);
	const auto base = random_vectors(k_nodes, k_dim, 200);
	HnswContextPool pool;
	tbb::task_arena arena(4);
	constexpr std::uint32_t batch = 500;
	for (std::uint32_t from = 0; from < k_nodes; from += batch) {
		const std::uint32_t count = std::min(batch, k_nodes - from);
		const std::vector<std::uint64_t> generations(count, from + 1);
		const std::span<const float> vectors(base.data() + std::size_t{from} * k_dim, std::size_t{count} * k_dim);
		std::uint32_t first = 0;
		HnswStatus status = HnswStatus::invalid_config;
		arena.execute([&] { status = insert_batch(graph, vectors, generations, pool, &first); });
		ASSERT_EQ(status, HnswStatus::ok);
		EXPECT_EQ(first, from);
	}
	expect_graph_invariants(graph, k_nodes);
	EXPECT_GT(pool.memory_bytes(), 0u);
}

TEST(HnswConcurrency, CancelledLinkingLeavesNodesForLaterAndSnapshotFindsThem)
{
	SKIP_UNDER_TSAN_WITH_TBB();
	Region region(32 << 20);
	HnswGraph graph = make_graph(region, 8);
	const std::uint32_t n = k_sanitized ? 300 : 1000;
	const auto base = random_vectors(n, k_dim, 300);
	const std::vector<std::uint64_t> generations(n, 1);
	std::uint32_t first = 0;
	ASSERT_EQ(graph.append_batch(base, generations, first), HnswStatus::ok);
	HnswContextPool pool;
	const std::atomic<bool> cancelled{true};
	EXPECT_EQ(link_range(graph, 0, n, pool, &cancelled), 0u);
	EXPECT_EQ(graph.linked_prefix(), 0u);
	SearchContext context;
	SearchParams params;
	params.k = 5;
	const std::span<const float> q(base.data() + 17 * k_dim, k_dim);
	EXPECT_TRUE(graph.search(q, params, context).neighbors.empty());
	EXPECT_EQ(graph.snapshot_search(q, params, context).neighbors[0].id, 17u);
	tbb::task_arena arena(2);
	std::uint32_t linked = 0;
	arena.execute([&] { linked = link_range(graph, 0, n, pool); });
	EXPECT_EQ(linked, n);
	arena.execute([&] { linked = link_range(graph, 0, n, pool); });
	EXPECT_EQ(linked, 0u) << "already linked nodes are skipped";
	expect_graph_invariants(graph, n);
}

TEST(HnswConcurrency, SearchesDuringInsertionFindEveryLinkedNodeUpToK)
{
	// A search that meets a node whose link is still in progress must not
	// descend into it: its lower lists may still be empty, and a search
	// stranded there would return that one node instead of k. Whatever the
	// interleaving, a search for k nodes finds at least min(k, nodes linked
	// before it started), since every linked node is reachable.
	constexpr std::uint32_t k = 50;
	const std::uint32_t n = k_sanitized ? 1500 : 6000;
	std::atomic<std::uint64_t> short_results{0}, searches{0};
	for (int round = 0; round < 3; ++round) {
		Region region(64 << 20);
		HnswGraph graph = make_graph(region, 8);
		const auto base = random_vectors(n, k_dim, 600 + round);
		const auto queries = random_vectors(64, k_dim, 700 + round);
		std::atomic<bool> inserting{true};
		std::thread searcher([&] {
			SearchContext context;
			SearchParams params;
			params.k = k;
			params.ef = k;
			for (std::size_t q = 0; inserting.load(); ++q) {
				const std::uint64_t linked = graph.linked_prefix();
				const std::span<const float> query(queries.data() + (q % 64) * k_dim, k_dim);
				const std::size_t found = graph.search(query, params, context).neighbors.size();
				searches.fetch_add(1);
				if (found < std::min<std::uint64_t>(k, linked))
					short_results.fetch_add(1);
			}
		});
		insert_concurrently(graph, base, 3);
		inserting.store(false);
		searcher.join();
	}
	EXPECT_GT(searches.load(), 0u);
	EXPECT_EQ(short_results.load(), 0u) << "of " << searches.load() << " searches";
}

TEST(HnswConcurrency, SearchesDuringInsertionAndDeletionSeeOnlyTheirSnapshot)
{
	Region region(64 << 20);
	HnswGraph graph = make_graph(region, 8);
	const std::uint32_t n = k_nodes;
	const auto base = random_vectors(n, k_dim, 400);
	const auto queries = random_vectors(64, k_dim, 401);
	// deleted_at[id] = sequence number of the deletion (a forget from the
	// node's own generation on), published after forget_node returned.
	std::vector<std::atomic<std::uint64_t>> deleted_at(n);
	std::atomic<std::uint64_t> deletions{0};
	std::atomic<std::uint32_t> next{0};
	std::atomic<bool> writing{true};
	std::atomic<std::uint64_t> violations{0}, searches{0};

	std::vector<std::thread> threads;
	for (int w = 0; w < 2; ++w) {
		threads.emplace_back([&] {
			SearchContext context;
			for (std::uint32_t i; (i = next.fetch_add(1)) < n;) {
				// A node's generation is its vector index + 1, so generations arrive out of order.
				const std::span<const float> v(base.data() + std::size_t{i} * k_dim, k_dim);
				ASSERT_EQ(graph.insert(v, i + 1, context), HnswStatus::ok);
			}
		});
	}
	threads.emplace_back([&] {
		std::mt19937 rng(402);
		while (writing.load()) {
			const std::uint64_t size = graph.size();
			if (size == 0)
				continue;
			const auto id = static_cast<std::uint32_t>(rng() % size);
			ASSERT_NE(graph.forget_node(id, 0), ForgetResult::not_found);
			std::uint64_t expected = 0;
			deleted_at[id].compare_exchange_strong(expected, deletions.fetch_add(1) + 1);
			std::this_thread::yield();
		}
	});
	for (int r = 0; r < 2; ++r) {
		threads.emplace_back([&, r] {
			SearchContext context;
			std::mt19937 rng(500 + r);
			std::size_t q = 0;
			while (writing.load()) {
				SearchParams params;
				params.k = 10;
				params.ef = 24 + (rng() % 40);
				params.max_generation = rng() % (n + 2);
				const std::uint64_t seen_deletions = deletions.load();
				const std::span<const float> query(queries.data() + (q++ % 64) * k_dim, k_dim);
				const SearchResult result = (q % 2 == 0) ? graph.search(query, params, context)
														 : graph.snapshot_search(query, params, context);
				searches.fetch_add(1);
				const std::uint64_t size = graph.size();
				std::set<std::uint32_t> distinct;
				for (const Neighbor &nb : result.neighbors) {
					const bool bad = nb.id >= size || graph.generation(nb.id) > params.max_generation ||
									 (deleted_at[nb.id].load() != 0 && deleted_at[nb.id].load() <= seen_deletions) ||
									 !distinct.insert(nb.id).second;
					violations.fetch_add(bad ? 1 : 0);
				}
				if (!std::is_sorted(result.neighbors.begin(), result.neighbors.end()))
					violations.fetch_add(1);
			}
		});
	}
	threads[0].join();
	threads[1].join();
	writing.store(false);
	for (std::size_t t = 2; t < threads.size(); ++t)
		threads[t].join();
	EXPECT_EQ(violations.load(), 0u);
	EXPECT_GT(searches.load(), 0u);
	EXPECT_GT(deletions.load(), 0u);
	expect_graph_invariants(graph, n);

	// Quiescent now: a bounded search over everything returns exactly the visible set.
	SearchContext context;
	SearchParams params;
	params.k = n;
	params.ef = n;
	params.max_generation = n / 2;
	const SearchResult r = graph.search(std::span<const float>(queries.data(), k_dim), params, context);
	std::set<std::uint32_t> got;
	for (const Neighbor &nb : r.neighbors)
		got.insert(nb.id);
	std::set<std::uint32_t> want;
	for (std::uint32_t id = 0; id < n; ++id)
		if (graph.generation(id) <= n / 2 && graph.forgotten(id) == k_never_forgotten)
			want.insert(id);
	EXPECT_EQ(got, want);
}

// Which links the injected fault breaks: the first attempt of every node
// that holds the top lock (its level exceeds the graph's), at its first
// level, and the first attempt of every fifth node at level 0, after it has
// adopted its tree parent and connected its upper levels.
struct LinkFaults {
	explicit LinkFaults(const HnswGraph &g) : graph(g), failed(g.size()) {}
	const HnswGraph &graph;
	std::vector<std::atomic<bool>> failed;
	std::atomic<std::uint32_t> injected{0}, holding_top{0};
};

LinkFaults *link_faults = nullptr;

void
fail_first_attempts(std::uint32_t id, std::uint32_t level)
{
	LinkFaults &f = *link_faults;
	const bool holds_top = f.graph.level(id) > f.graph.max_level();
	if (!holds_top && (level != 0 || id % 5 != 0))
		return;
	if (f.failed[id].exchange(true))
		return; // its retry goes through
	++f.injected;
	if (holds_top)
		++f.holding_top;
	throw std::bad_alloc();
}

// Installs a link hook for the scope of a test.
class ScopedLinkHook {
public:
	explicit ScopedLinkHook(fault::LinkLevelHook hook) : previous_(fault::set_link_level_hook(hook)) {}
	~ScopedLinkHook() { fault::set_link_level_hook(previous_); }

private:
	fault::LinkLevelHook previous_;
};

TEST(HnswConcurrency, FailedLinksReleaseWhatTheyHoldAndAreLinkedLater)
{
	// Linkers share claims as the worker pool does; some links throw half-way.
	// Each failed node goes back to the claim cursor and is linked by whoever
	// claims it next: in the end every node is linked, the graph keeps its
	// invariants, and a node that failed while holding the top lock did not
	// keep it (its retry, and every later node above the top level, needs it).
	Region region(64 << 20);
	HnswGraph graph = make_graph(region, 8);
	const auto base = random_vectors(k_nodes, k_dim, 500);
	std::uint32_t first = 0;
	ASSERT_EQ(graph.append_batch(base, std::vector<std::uint64_t>(k_nodes, 1), first), HnswStatus::ok);
	auto faults = std::make_unique<LinkFaults>(graph);
	link_faults = faults.get();
	std::atomic<std::uint32_t> caught{0}, linked{0};
	// Nodes that were never given back would leave the prefix stuck: give up
	// after a generous while rather than wait forever.
	const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(4);
	{
		ScopedLinkHook hook(&fail_first_attempts);
		std::vector<std::thread> linkers;
		for (int t = 0; t < 3; ++t)
			linkers.emplace_back([&] {
				SearchContext context;
				while (graph.linked_prefix() < k_nodes && std::chrono::steady_clock::now() < deadline) {
					std::uint32_t from = 0;
					const std::uint32_t n = graph.claim_unlinked(16, from);
					for (std::uint32_t id = from; id < from + n; ++id) {
						try {
							linked += graph.link(id, context) ? 1 : 0;
						} catch (const std::bad_alloc &) {
							++caught;
							break; // the rest of the claim went back with the failed node
						}
					}
					if (n == 0)
						std::this_thread::yield();
				}
			});
		for (std::thread &l : linkers)
			l.join();
	}
	link_faults = nullptr;
	EXPECT_GT(faults->injected.load(), k_nodes / 10);
	EXPECT_GT(faults->holding_top.load(), 0u) << "some failed links held the top lock";
	EXPECT_EQ(caught.load(), faults->injected.load());
	EXPECT_EQ(graph.failed_links(), faults->injected.load());
	EXPECT_EQ(linked.load(), k_nodes);
	EXPECT_EQ(graph.linked_count(), k_nodes);
	expect_graph_invariants(graph, k_nodes);

	// Searches stay as good as brute force says they should be.
	SearchContext context;
	SearchParams params;
	params.k = 10;
	params.ef = 64;
	std::uint32_t agree = 0, total = 0;
	for (std::uint32_t q = 0; q < 50; ++q) {
		const std::span<const float> query(base.data() + std::size_t{q * 13} * k_dim, k_dim);
		const SearchResult exact = graph.exact_search(query, params, 0, k_no_node, context);
		const std::vector<Neighbor> truth(exact.neighbors.begin(), exact.neighbors.end());
		const SearchResult found = graph.search(query, params, context);
		for (const Neighbor &n : found.neighbors)
			agree += std::any_of(truth.begin(), truth.end(), [&](const Neighbor &t) { return t.id == n.id; }) ? 1 : 0;
		total += static_cast<std::uint32_t>(truth.size());
	}
	EXPECT_GE(agree * 100, total * 90) << agree << " of " << total;
}

} // namespace
} // namespace engram::core
