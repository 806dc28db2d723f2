// LinkStamps in one thread: batches settle in the order they were stored and
// only once the linked prefix passes their end, with the wait since their
// stamp; a full table merges the neighbours with the nearest stamps and
// loses no row; a compaction's move renumbers the batches and counts only
// the rows it kept; and a graph's own stamps settle against its prefix.
#include "core/link_stamps.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"
#include "heap_region.hpp"

namespace engram::core {
namespace {

// A clock the tests set: stamps are in units of 100 us.
std::uint32_t g_now = 0;
std::uint32_t
test_clock() noexcept
{
	return g_now;
}

std::uint64_t
count(const LatencyHistogram &h)
{
	return h.snapshot().count();
}

TEST(LinkStamps, SettlesOnlyBatchesBelowThePrefix)
{
	LinkStamps s{};
	LatencyHistogram h{};
	push_link_stamp(s, 10, 10, 1000);
	push_link_stamp(s, 15, 5, 1002);
	push_link_stamp(s, 40, 25, 1003);
	EXPECT_TRUE(has_pending_link_stamps(s));
	g_now = 1010;
	EXPECT_EQ(settle_link_stamps(s, 9, &h, test_clock), 0u);
	EXPECT_EQ(count(h), 0u);
	// Ids 10..14 linked out of order do not help while 9 is missing; the
	// prefix passing 15 settles the first two batches, not the third.
	EXPECT_EQ(settle_link_stamps(s, 15, &h, test_clock), 15u);
	const LatencySnapshot snap = h.snapshot();
	EXPECT_EQ(snap.count(), 15u);
	EXPECT_EQ(snap.sum_us, 10u * 1000 + 5u * 800); // waits of 10 and 8 units of 100 us
	EXPECT_TRUE(has_pending_link_stamps(s));
	g_now = 1100;
	EXPECT_EQ(settle_link_stamps(s, 100, &h, test_clock), 25u);
	EXPECT_EQ(count(h), 40u);
	EXPECT_EQ(h.snapshot().sum_us, 10u * 1000 + 5u * 800 + 25u * 9700);
	EXPECT_FALSE(has_pending_link_stamps(s));
	EXPECT_EQ(settle_link_stamps(s, 100, &h, test_clock), 0u);
}

TEST(LinkStamps, WaitsAcrossTheStampWrap)
{
	LinkStamps s{};
	LatencyHistogram h{};
	push_link_stamp(s, 1, 1, 0xffff'fffeu);
	g_now = 3; // five units later, modulo 2^32
	EXPECT_EQ(settle_link_stamps(s, 1, &h, test_clock), 1u);
	EXPECT_EQ(h.snapshot().sum_us, 500u);
}

TEST(LinkStamps, AFullTableMergesTheNearestStampsAndKeepsEveryRow)
{
	LinkStamps s{};
	// Stamps 100 apart, but for batch 6, only 1 after batch 5.
	std::uint32_t end = 0;
	std::uint64_t rows = 0;
	std::vector<std::uint32_t> stamps;
	for (std::uint32_t i = 0; i < k_link_stamp_entries; ++i)
		stamps.push_back(i == 6 ? 1501 : 1000 + 100 * i);
	for (std::uint32_t i = 0; i < k_link_stamp_entries; ++i) {
		end += 2;
		rows += 2;
		push_link_stamp(s, end, 2, stamps[i]);
	}
	ASSERT_EQ(stamps[6] - stamps[5], 1u);
	EXPECT_EQ(s.pending.load(), k_link_stamp_entries);
	// One more batch, far from every other stamp: 5 and 6 become one.
	end += 4;
	rows += 4;
	push_link_stamp(s, end, 4, 100'000);
	EXPECT_EQ(s.pending.load(), k_link_stamp_entries);
	// Settling the first five batches leaves the merged one, which needs the
	// prefix past the end of batch 6.
	LatencyHistogram h{};
	g_now = 200'000;
	EXPECT_EQ(settle_link_stamps(s, 10, &h, test_clock), 10u);
	EXPECT_EQ(settle_link_stamps(s, 13, &h, test_clock), 0u);
	EXPECT_EQ(settle_link_stamps(s, 14, &h, test_clock), 4u);
	// Its stamp is the mean of the two (equal rows): half a unit is rounded down.
	EXPECT_EQ(settle_link_stamps(s, end, &h, test_clock), rows - 14);
	EXPECT_EQ(count(h), rows);
	std::uint64_t expected = 0;
	for (std::uint32_t i = 0; i < k_link_stamp_entries; ++i)
		if (i < 5 || i > 6)
			expected += 2 * stamp_wait_us(stamps[i], g_now);
	expected += 4 * stamp_wait_us(stamps[5], g_now);
	expected += 4 * stamp_wait_us(100'000, g_now);
	EXPECT_EQ(h.snapshot().sum_us, expected);
	EXPECT_FALSE(has_pending_link_stamps(s));
}

TEST(LinkStamps, ANewBatchNearTheLastJoinsIt)
{
	LinkStamps s{};
	for (std::uint32_t i = 0; i < k_link_stamp_entries; ++i)
		push_link_stamp(s, (i + 1) * 10, 10, 1000 * (i + 1));
	// Same stamp as the last batch (a large transaction's next chunk).
	push_link_stamp(s, k_link_stamp_entries * 10 + 30, 30, 1000 * k_link_stamp_entries);
	EXPECT_EQ(s.pending.load(), k_link_stamp_entries);
	LatencyHistogram h{};
	g_now = 1000 * k_link_stamp_entries;
	EXPECT_EQ(settle_link_stamps(s, k_link_stamp_entries * 10, &h, test_clock), (k_link_stamp_entries - 1) * 10);
	EXPECT_EQ(settle_link_stamps(s, k_link_stamp_entries * 10 + 30, &h, test_clock), 40u);
	EXPECT_FALSE(has_pending_link_stamps(s));
}

TEST(LinkStamps, SettlingWithoutAHistogramStillEmpties)
{
	LinkStamps s{};
	push_link_stamp(s, 3, 3, 7);
	push_link_stamp(s, 5, 0, 8); // no rows: nothing to time
	EXPECT_EQ(s.pending.load(), 1u);
	EXPECT_EQ(settle_link_stamps(s, 3, nullptr, test_clock), 3u);
	EXPECT_FALSE(has_pending_link_stamps(s));
}

TEST(LinkStamps, MovingRenumbersAndCountsOnlyKeptRows)
{
	LinkStamps from{};
	LinkStamps to{};
	push_link_stamp(from, 4, 4, 10);  // ids 0..3
	push_link_stamp(from, 8, 4, 20);  // ids 4..7, all removed below
	push_link_stamp(from, 12, 4, 30); // ids 8..11
	// The copy kept 0, 2, 3, 9 and 11 (as 0..4).
	const std::vector<std::uint32_t> kept = {0, 2, 3, 9, 11};
	move_link_stamps(from, to, kept);
	EXPECT_FALSE(has_pending_link_stamps(from));
	ASSERT_EQ(to.pending.load(), 2u);
	LatencyHistogram h{};
	g_now = 40;
	EXPECT_EQ(settle_link_stamps(to, 2, &h, test_clock), 0u);
	EXPECT_EQ(settle_link_stamps(to, 3, &h, test_clock), 3u);
	EXPECT_EQ(settle_link_stamps(to, 5, &h, test_clock), 2u);
	EXPECT_EQ(h.snapshot().sum_us, 3u * 3000 + 2u * 1000);
}

TEST(LinkStamps, AGraphSettlesItsOwnStampsAsItLinks)
{
	test_support::Region region(8 << 20);
	HnswConfig config;
	config.dim = 4;
	config.m = 4;
	config.ef_construction = 16;
	std::uint64_t offset = 0;
	ASSERT_EQ(HnswGraph::create(region.arena, config, offset), HnswStatus::ok);
	HnswGraph graph(region.arena, offset);
	const std::vector<float> vectors = test_support::random_vectors(6, 4, 3);
	std::uint32_t first = 0;
	ASSERT_EQ(graph.append_batch(vectors, std::vector<std::uint64_t>(6, 1), first), HnswStatus::ok);
	graph.stamp_stored(first + 6, 6, commit_stamp_now());
	LatencyHistogram h{};
	EXPECT_EQ(graph.settle_link_stamps(&h), 0u);
	SearchContext context;
	for (std::uint32_t id = 5; id > 0; --id) // out of order, leaving 0 for last
		ASSERT_TRUE(graph.link(id, context));
	EXPECT_EQ(graph.settle_link_stamps(&h), 0u);
	EXPECT_TRUE(graph.has_link_stamps());
	ASSERT_TRUE(graph.link(0, context));
	EXPECT_EQ(graph.settle_link_stamps(&h), 6u);
	EXPECT_EQ(count(h), 6u);
	EXPECT_FALSE(graph.has_link_stamps());
}

} // namespace
} // namespace engram::core
