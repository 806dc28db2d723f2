// The LinkPool links what is appended to any space's graph, spreads one hot
// graph over all its threads, lets a graph be retired while it works, links
// later what a failed link gave back, and times stamped rows once linked.
#include "core/link_pool.hpp"

#include <gtest/gtest.h>

#include "core/fault_injection.hpp"
#include "core/hnsw_context.hpp"
#include "heap_region.hpp"
#include "sanitizers.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <new>
#include <stdexcept>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

using test_support::Region;
using test_support::random_vectors;
using test_support::k_sanitized;

constexpr std::uint32_t k_dim = 12;

std::uint64_t
new_graph(Arena arena)
{
	HnswConfig config;
	config.dim = k_dim;
	config.m = 8;
	config.ef_construction = 32;
	config.first_chunk_log2 = 5;
	std::uint64_t offset = 0;
	EXPECT_EQ(HnswGraph::create(arena, config, offset), HnswStatus::ok);
	return offset;
}

void
append(HnswGraph &graph, const std::vector<float> &vectors, std::uint32_t from, std::uint32_t n)
{
	std::uint32_t first = 0;
	ASSERT_EQ(graph.append_batch(std::span<const float>(vectors).subspan(std::size_t{from} * k_dim,
																		 std::size_t{n} * k_dim),
								 std::vector<std::uint64_t>(n, 1), first),
			  HnswStatus::ok);
}

// A directory of n empty index slots.
std::vector<IndexSlot>
empty_slots(std::size_t n)
{
	std::vector<IndexSlot> slots(n);
	for (IndexSlot &s : slots)
		reset(s);
	return slots;
}

bool
wait_for(const std::function<bool()> &done)
{
	for (int i = 0; i < 20000 && !done(); ++i)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	return done();
}

TEST(LinkPool, LinksEverySpaceAndCountsIt)
{
	SKIP_UNDER_TSAN_WITH_TBB();
	Region region(64 << 20);
	std::vector<IndexSlot> slots = empty_slots(5);
	std::atomic<std::uint64_t> linked{0};
	LinkPool pool(region.arena, slots, 2, &linked);
	const auto vectors = random_vectors(3000, k_dim, 5);
	std::vector<HnswGraph> graphs;
	for (unsigned s : {0u, 2u, 4u}) {
		install(slots[s], 0, new_graph(region.arena));
		graphs.emplace_back(region.arena, slots[s].graphs[0].load());
	}
	// Appends arrive in small batches, as the drain delivers them.
	for (std::uint32_t i = 0; i < 1000; i += 50) {
		for (HnswGraph &g : graphs)
			append(g, vectors, i, 50);
		pool.wake();
	}
	ASSERT_TRUE(wait_for([&] { return linked.load() == 3000; })) << linked.load();
	for (HnswGraph &g : graphs) {
		EXPECT_EQ(g.linked_count(), 1000u);
		EXPECT_EQ(g.linked_prefix(), 1000u);
	}
	EXPECT_TRUE(wait_for([&] { return pool.running() == 0; })) << "threads stop when nothing is left";
	EXPECT_EQ(pool.failures(), 0u);
}

TEST(LinkPool, TimesStampedRowsOnceTheirLinksFinish)
{
	SKIP_UNDER_TSAN_WITH_TBB();
	Region region(32 << 20);
	std::vector<IndexSlot> slots = empty_slots(1);
	install(slots[0], 0, new_graph(region.arena));
	HnswGraph graph(region.arena, slots[0].graphs[0].load());
	LatencyHistogram latency{};
	LinkPool pool(region.arena, slots, 2, nullptr, nullptr, {}, 0, &latency);
	const auto vectors = random_vectors(400, k_dim, 9);
	// 300 stamped rows, then 100 stored without a stamp (a load's).
	for (std::uint32_t i = 0; i < 400; i += 50) {
		append(graph, vectors, i, 50);
		if (i < 300)
			graph.stamp_stored(i + 50, 50, commit_stamp_now());
		pool.wake();
	}
	ASSERT_TRUE(wait_for([&] { return graph.linked_prefix() == 400 && pool.running() == 0; }));
	EXPECT_EQ(latency.snapshot().count(), 300u);
	EXPECT_FALSE(graph.has_link_stamps());
}

// Graphs of 100 rows in slots `walked` and `skipped`: the pool links the
// first and leaves the second alone until let_in() shows it to the pool.
void
expect_skipped_until(LinkPool &pool, Arena arena, std::vector<IndexSlot> &slots, std::size_t walked,
					 std::size_t skipped, const std::atomic<std::uint64_t> &linked, const std::function<void()> &let_in)
{
	const auto vectors = random_vectors(200, k_dim, 9);
	install(slots[walked], 0, new_graph(arena));
	install(slots[skipped], 0, new_graph(arena));
	HnswGraph first(arena, slots[walked].graphs[0].load());
	HnswGraph later(arena, slots[skipped].graphs[0].load());
	append(first, vectors, 0, 100);
	append(later, vectors, 100, 100);
	pool.wake();
	ASSERT_TRUE(wait_for([&] { return first.linked_count() == 100 && pool.running() == 0; }));
	EXPECT_EQ(later.linked_count(), 0u) << "the skipped slot is not walked";
	let_in();
	pool.wake();
	ASSERT_TRUE(wait_for([&] { return later.linked_count() == 100; }));
	EXPECT_EQ(linked.load(), 200u);
}

// A directory sized for many spaces is walked only as far as it is in use.
TEST(LinkPool, WalksOnlyTheSlotsInUse)
{
	SKIP_UNDER_TSAN_WITH_TBB();
	Region region(64 << 20);
	std::vector<IndexSlot> slots = empty_slots(4);
	std::atomic<std::uint32_t> in_use{1};
	std::atomic<std::uint64_t> linked{0};
	LinkPool pool(region.arena, slots, 2, &linked, &in_use);
	expect_skipped_until(pool, region.arena, slots, 0, 3, linked, [&] { in_use.store(4); });
}

// With hints, a slot whose hint lacks the mask is not read at all, and is
// linked once its owner sets the bit.
TEST(LinkPool, SkipsSlotsWithoutTheHint)
{
	SKIP_UNDER_TSAN_WITH_TBB();
	Region region(64 << 20);
	std::vector<IndexSlot> slots = empty_slots(3);
	constexpr std::uint32_t k_link = 1u << 4;
	std::vector<std::atomic<std::uint32_t>> hints(3);
	hints[0].store(k_link | 1u);
	hints[2].store(1u); // another kind of duty: not the pool's
	std::atomic<std::uint64_t> linked{0};
	LinkPool pool(region.arena, slots, 2, &linked, nullptr, hints, k_link);
	expect_skipped_until(pool, region.arena, slots, 0, 2, linked, [&] { hints[2].fetch_or(k_link); });
}

TEST(LinkPool, OneHotGraphKeepsEveryThreadBusy)
{
	// The pool's tasks are enqueued and nobody joins the arena, so each one
	// needs a TBB worker thread of its own, whatever the number of cores.
	SKIP_UNDER_TSAN_WITH_TBB();
	Region region(128 << 20);
	std::vector<IndexSlot> slots(1);
	reset(slots[0]);
	std::atomic<std::uint64_t> linked{0};
	LinkPool pool(region.arena, slots, 2, &linked);
	install(slots[0], 0, new_graph(region.arena));
	HnswGraph graph(region.arena, slots[0].graphs[0].load());
	const std::uint32_t n = k_sanitized ? 4000 : 20000;
	append(graph, random_vectors(n, k_dim, 7), 0, n);
	pool.wake();
	ASSERT_TRUE(wait_for([&] { return linked.load() == n; })) << linked.load();
	EXPECT_TRUE(wait_for([&] { return pool.running() == 0; }));
	EXPECT_EQ(pool.threads_used(), 2u);
}

TEST(LinkPool, RetiringAGraphWhileLinkingIsSafe)
{
	SKIP_UNDER_TSAN_WITH_TBB();
	Region region(64 << 20);
	std::vector<IndexSlot> slots(1);
	reset(slots[0]);
	LinkPool pool(region.arena, slots, 2);
	const auto vectors = random_vectors(4000, k_dim, 6);
	install(slots[0], 0, new_graph(region.arena));
	HnswGraph old_graph(region.arena, slots[0].graphs[0].load());
	append(old_graph, vectors, 0, 4000);
	pool.wake();
	// A replacement takes over mid-way, as after engram.rebuild().
	install(slots[0], 1, new_graph(region.arena));
	HnswGraph replacement(region.arena, slots[0].graphs[1].load());
	append(replacement, vectors, 0, 500);
	make_current(slots[0], 1);
	const std::uint64_t retired = retire(slots[0], 0);
	ASSERT_TRUE(wait_for([&] { return drained(slots[0], 0); }));
	HnswGraph(region.arena, retired).destroy();
	pool.wake();
	ASSERT_TRUE(wait_for([&] { return replacement.linked_count() == 500; }));
	pool.stop();
	EXPECT_EQ(pool.running(), 0u);
	replacement.destroy();
	EXPECT_EQ(region.arena.used_bytes(), 0u);
}

// Every third node's first link throws std::bad_alloc at level 0, and every
// third (offset by one) a std::runtime_error: any exception in a link thread.
std::unique_ptr<std::atomic<bool>[]> failed_once;

void
fail_some_first_links(std::uint32_t id, std::uint32_t level)
{
	if (level != 0 || id % 3 == 2 || failed_once[id].exchange(true))
		return;
	if (id % 3 == 0)
		throw std::bad_alloc();
	throw std::runtime_error("injected");
}

TEST(LinkPool, LinksWhatFailedLinksGaveBack)
{
	SKIP_UNDER_TSAN_WITH_TBB();
	Region region(64 << 20);
	std::vector<IndexSlot> slots(1);
	reset(slots[0]);
	std::atomic<std::uint64_t> linked{0};
	LinkPool pool(region.arena, slots, 2, &linked);
	install(slots[0], 0, new_graph(region.arena));
	HnswGraph graph(region.arena, slots[0].graphs[0].load());
	const std::uint32_t n = 1500;
	failed_once = std::make_unique<std::atomic<bool>[]>(n);
	fault::set_link_level_hook(&fail_some_first_links);
	append(graph, random_vectors(n, k_dim, 8), 0, n);
	pool.wake();
	const bool all_linked = wait_for([&] { return graph.linked_prefix() == n; });
	fault::set_link_level_hook(nullptr);
	ASSERT_TRUE(all_linked) << graph.linked_prefix() << " of " << n;
	EXPECT_EQ(graph.linked_count(), n);
	EXPECT_EQ(linked.load(), n);
	EXPECT_GT(pool.failures(), 0u);
	EXPECT_EQ(graph.failed_links(), pool.failures());
	EXPECT_TRUE(wait_for([&] { return pool.running() == 0; })) << "threads stop when nothing is left";
	// Every node is found by its own vector.
	SearchContext context;
	SearchParams params;
	params.k = 1;
	const auto vectors = random_vectors(n, k_dim, 8);
	std::uint32_t found = 0;
	for (std::uint32_t id = 0; id < n; ++id)
		found += graph.search(std::span<const float>(vectors).subspan(std::size_t{id} * k_dim, k_dim), params, context)
					 .neighbors[0]
					 .id == id;
	EXPECT_GE(found * 100, n * 99);
}

TEST(LinkPool, PausedPoolLinksNothingUntilResumed)
{
	SKIP_UNDER_TSAN_WITH_TBB();
	Region region(32 << 20);
	std::vector<IndexSlot> slots(1);
	reset(slots[0]);
	std::atomic<std::uint64_t> linked{0};
	LinkPool pool(region.arena, slots, 2, &linked);
	install(slots[0], 0, new_graph(region.arena));
	HnswGraph graph(region.arena, slots[0].graphs[0].load());
	pool.set_paused(true);
	append(graph, random_vectors(400, k_dim, 9), 0, 400);
	pool.wake();
	EXPECT_EQ(pool.running(), 0u) << "a paused pool starts no task";
	std::this_thread::sleep_for(std::chrono::milliseconds(50));
	EXPECT_EQ(graph.linked_count(), 0u);
	EXPECT_TRUE(graph.has_unclaimed());
	pool.set_paused(false);
	pool.wake();
	ASSERT_TRUE(wait_for([&] { return graph.linked_prefix() == 400; })) << graph.linked_prefix();
	EXPECT_EQ(linked.load(), 400u);
}

// While a graph's links are frozen (its file is written) the pool links the
// other graphs, leaves it alone and lets its tasks end instead of spinning;
// the first wake() after the thaw links it.
TEST(LinkPool, FrozenGraphWaitsForTheThawWithoutSpinning)
{
	SKIP_UNDER_TSAN_WITH_TBB();
	Region region(32 << 20);
	std::vector<IndexSlot> slots = empty_slots(2);
	std::atomic<std::uint64_t> linked{0};
	LinkPool pool(region.arena, slots, 2, &linked);
	install(slots[0], 0, new_graph(region.arena));
	install(slots[1], 0, new_graph(region.arena));
	HnswGraph frozen(region.arena, slots[0].graphs[0].load());
	HnswGraph other(region.arena, slots[1].graphs[0].load());
	const auto vectors = random_vectors(600, k_dim, 10);
	frozen.freeze_links();
	append(frozen, vectors, 0, 300);
	append(other, vectors, 300, 300);
	pool.wake();
	ASSERT_TRUE(wait_for([&] { return other.linked_prefix() == 300; })) << other.linked_prefix();
	EXPECT_TRUE(wait_for([&] { return pool.running() == 0; })) << "tasks end while the only work left is frozen";
	// and stay ended: a task that kept looking would restart itself.
	int restarted = 0;
	for (int i = 0; i < 100; ++i, std::this_thread::sleep_for(std::chrono::milliseconds(1)))
		restarted += pool.running() != 0;
	EXPECT_EQ(restarted, 0) << "tasks spin on the frozen graph";
	EXPECT_EQ(frozen.linked_count(), 0u);
	EXPECT_TRUE(frozen.has_unclaimed());
	frozen.thaw_links();
	pool.wake();
	ASSERT_TRUE(wait_for([&] { return frozen.linked_prefix() == 300; })) << frozen.linked_prefix();
	EXPECT_EQ(linked.load(), 600u);
}

} // namespace
} // namespace engram::core
