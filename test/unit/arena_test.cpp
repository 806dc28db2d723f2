// The arena hands out disjoint, aligned, zeroed blocks by offset, reuses
// freed ones (overwritten with zeros when freed, merged with free
// neighbours, however many there are), and the segmented array grows in
// place without moving elements, also while other threads read it.
#include "core/arena.hpp"
#include "core/segmented_array.hpp"

#include <gtest/gtest.h>

#include "heap_region.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

using ArenaFixture = test_support::Region;

TEST(Arena, BlocksAreDisjointAlignedAndAccounted)
{
	ArenaFixture f(1 << 20);
	const std::uint64_t a = f.arena.allocate(100);
	const std::uint64_t b = f.arena.allocate(5000);
	ASSERT_NE(a, 0u);
	ASSERT_NE(b, 0u);
	EXPECT_EQ(a % 64, 0u);
	EXPECT_EQ(b % 64, 0u);
	EXPECT_GE(b, a + 100);
	EXPECT_EQ(f.arena.used_bytes(), 128u + 5056u);
	f.arena.release(a, 100);
	f.arena.release(b, 5000);
	EXPECT_EQ(f.arena.used_bytes(), 0u);
}

TEST(Arena, ReturnsZeroWhenExhaustedAndReusesFreedMemory)
{
	ArenaFixture f(1 << 20);
	std::vector<std::uint64_t> blocks;
	for (std::uint64_t off; (off = f.arena.allocate(64 * 1024)) != 0;)
		blocks.push_back(off);
	EXPECT_GE(blocks.size(), 14u);
	while (f.arena.allocate(4096) != 0)
		;
	EXPECT_EQ(f.arena.allocate(64 * 1024), 0u);
	// Free two neighbours: they coalesce into one block large enough for 128 KiB.
	f.arena.release(blocks[3], 64 * 1024);
	f.arena.release(blocks[4], 64 * 1024);
	EXPECT_EQ(f.arena.allocate(128 * 1024), blocks[3]);
}

TEST(Arena, ReleaseOverwritesTheBlockSoFreeMemoryHoldsNothing)
{
	ArenaFixture f(1 << 20);
	const std::uint64_t a = f.arena.allocate(10000);
	const std::uint64_t b = f.arena.allocate(3000);
	ASSERT_NE(a, 0u);
	ASSERT_NE(b, 0u);
	std::memset(f.arena.at<std::byte>(a), 0xAB, 10000);
	std::memset(f.arena.at<std::byte>(b), 0xCD, 3000);
	f.arena.release(a, 10000); // to the free list
	f.arena.release(b, 3000);  // back to the bump frontier, coalesced with a
	const auto *bytes = f.arena.at<const unsigned char>(a);
	EXPECT_TRUE(std::all_of(bytes, bytes + Arena::rounded(10000) + Arena::rounded(3000),
							[](unsigned char x) { return x == 0; }));
	// A block carved from freed memory starts zero, also past what its owner asked for.
	const std::uint64_t c = f.arena.allocate(5000);
	ASSERT_EQ(c, a);
	const auto *fresh = f.arena.at<const unsigned char>(c);
	EXPECT_TRUE(std::all_of(fresh, fresh + Arena::rounded(5000), [](unsigned char x) { return x == 0; }));
}

// Far more free fragments than the former fixed list of 1,024 held: every
// one is reused, and freeing the rest merges them all back into one block.
TEST(Arena, KeepsAnyNumberOfFreeBlocks)
{
	ArenaFixture f(16 << 20);
	std::vector<std::uint64_t> blocks;
	for (std::uint64_t off; (off = f.arena.allocate(640)) != 0;)
		blocks.push_back(off);
	ASSERT_GT(blocks.size(), 20000u);
	for (std::size_t i = 0; i < blocks.size(); i += 2)
		f.arena.release(blocks[i], 640);
	EXPECT_EQ(f.arena.free_blocks(), (blocks.size() + 1) / 2 - (blocks.size() % 2 == 1 ? 1 : 0));
	EXPECT_EQ(f.arena.used_bytes(), blocks.size() / 2 * 640);
	// Every hole is found again, and nothing else is left.
	for (std::size_t i = 0; i < blocks.size(); i += 2)
		ASSERT_NE(f.arena.allocate(640), 0u) << i;
	EXPECT_EQ(f.arena.free_blocks(), 0u);
	for (std::uint64_t b : blocks)
		f.arena.release(b, 640);
	EXPECT_EQ(f.arena.used_bytes(), 0u);
	EXPECT_EQ(f.arena.free_blocks(), 0u) << "everything merged back into the bump frontier";
	EXPECT_NE(f.arena.allocate(f.arena.capacity_bytes()), 0u) << "the whole arena is one block again";
}

// Random sizes allocated and released in random order against a model: the
// blocks never overlap, come out zero, and are accounted exactly; once all
// are released the arena is whole again.
TEST(Arena, RandomAllocationsAgainstAModel)
{
	ArenaFixture f(8 << 20);
	std::mt19937_64 rng(2026);
	std::map<std::uint64_t, std::size_t> live; // offset -> bytes asked
	std::size_t accounted = 0;
	auto overlaps = [&](std::uint64_t off, std::size_t bytes) {
		auto next = live.lower_bound(off);
		if (next != live.end() && next->first < off + Arena::rounded(bytes))
			return true;
		if (next == live.begin())
			return false;
		--next;
		return next->first + Arena::rounded(next->second) > off;
	};
	for (int step = 0; step < 60000; ++step) {
		const bool grow = live.empty() || rng() % 100 < 55;
		if (grow) {
			const std::size_t bytes = 1 + rng() % (rng() % 8 == 0 ? 200000 : 3000);
			const std::uint64_t off = f.arena.allocate(bytes);
			if (off == 0)
				continue;
			ASSERT_EQ(off % 64, 0u);
			ASSERT_FALSE(overlaps(off, bytes)) << step;
			const auto *p = f.arena.at<const unsigned char>(off);
			ASSERT_TRUE(std::all_of(p, p + Arena::rounded(bytes), [](unsigned char x) { return x == 0; })) << step;
			std::memset(f.arena.at<std::byte>(off), 0x5A, bytes);
			live.emplace(off, bytes);
			accounted += Arena::rounded(bytes);
		} else {
			auto it = live.begin();
			std::advance(it, static_cast<long>(rng() % live.size()));
			f.arena.release(it->first, it->second);
			accounted -= Arena::rounded(it->second);
			live.erase(it);
		}
		ASSERT_EQ(f.arena.used_bytes(), accounted) << step;
	}
	for (const auto &[off, bytes] : live)
		f.arena.release(off, bytes);
	EXPECT_EQ(f.arena.used_bytes(), 0u);
	EXPECT_EQ(f.arena.free_blocks(), 0u);
	const std::uint64_t whole = f.arena.allocate(f.arena.capacity_bytes());
	ASSERT_NE(whole, 0u);
	const auto *p = f.arena.at<const unsigned char>(whole);
	EXPECT_TRUE(std::all_of(p, p + f.arena.capacity_bytes(), [](unsigned char x) { return x == 0; }))
		<< "free memory holds nothing of what the blocks held, nor any tag";
}

// A freed block between two free neighbours merges with both.
TEST(Arena, MergesWithBothNeighbours)
{
	ArenaFixture f(1 << 20);
	const std::uint64_t a = f.arena.allocate(1000);
	const std::uint64_t b = f.arena.allocate(64);
	const std::uint64_t c = f.arena.allocate(3000);
	const std::uint64_t tail = f.arena.allocate(64);
	f.arena.release(a, 1000);
	f.arena.release(c, 3000);
	EXPECT_EQ(f.arena.free_blocks(), 2u);
	f.arena.release(b, 64);
	EXPECT_EQ(f.arena.free_blocks(), 1u);
	EXPECT_EQ(f.arena.allocate(Arena::rounded(1000) + 64 + Arena::rounded(3000)), a);
	f.arena.release(tail, 64);
}

TEST(SegmentedArray, GrowsWithoutMovingElements)
{
	ArenaFixture f(8 << 20);
	SegmentedArrayHeader header;
	SegmentedArray::init(&header, 64, 4);
	SegmentedArray array(f.arena, &header);
	EXPECT_EQ(array.capacity(), 0u);
	ASSERT_TRUE(array.ensure_capacity(10));
	EXPECT_EQ(array.capacity(), 16u);
	std::vector<std::byte *> addresses;
	for (std::uint64_t i = 0; i < 10000; ++i) {
		ASSERT_TRUE(array.ensure_capacity(i + 1));
		std::memcpy(array.at(i), &i, sizeof i);
		addresses.push_back(array.at(i));
	}
	for (std::uint64_t i = 0; i < 10000; ++i) {
		std::uint64_t v;
		std::memcpy(&v, array.at(i), sizeof v);
		ASSERT_EQ(v, i);
		ASSERT_EQ(array.at(i), addresses[i]);
	}
	const std::size_t before = f.arena.used_bytes();
	EXPECT_EQ(array.allocated_bytes(), before);
	array.release_all();
	EXPECT_EQ(f.arena.used_bytes(), 0u);
}

TEST(SegmentedArray, StopsDoublingAtTheChunkCap)
{
	ArenaFixture f(8 << 20);
	SegmentedArrayHeader header;
	SegmentedArray::init(&header, 64, 4, 7); // chunks of 16, 32, 64, then 128 elements each
	SegmentedArray array(f.arena, &header);
	std::vector<std::byte *> addresses;
	for (std::uint64_t i = 0; i < 5000; ++i) {
		ASSERT_TRUE(array.ensure_capacity(i + 1));
		std::memcpy(array.at(i), &i, sizeof i);
		addresses.push_back(array.at(i));
	}
	for (std::uint64_t i = 0; i < 5000; ++i) {
		std::uint64_t v;
		std::memcpy(&v, array.at(i), sizeof v);
		ASSERT_EQ(v, i);
		ASSERT_EQ(array.at(i), addresses[i]);
	}
	// 16 + 32 + 64 + 128 * 38 = 4976 < 5000 <= 5104: one more full chunk.
	EXPECT_EQ(array.capacity(), 5104u);
	EXPECT_LE(array.allocated_bytes(), (5000 + 128) * 64u + 64 * 64u);
	// Elements of one capped chunk are contiguous; the next chunk starts elsewhere.
	EXPECT_EQ(array.at(112 + 127), array.at(112) + 127 * 64);
	array.release_all();
	EXPECT_EQ(f.arena.used_bytes(), 0u);
}

TEST(SegmentedArray, CapsChunksNearTheByteLimitByDefault)
{
	SegmentedArrayHeader header;
	SegmentedArray::init(&header, 4096, 10);
	EXPECT_EQ(std::size_t{1} << header.max_chunk_log2, k_max_chunk_bytes / 4096);
}

TEST(SegmentedArray, ReportsExhaustion)
{
	ArenaFixture f(1 << 20);
	SegmentedArrayHeader header;
	SegmentedArray::init(&header, 1024, 4);
	SegmentedArray array(f.arena, &header);
	EXPECT_TRUE(array.ensure_capacity(200));
	EXPECT_FALSE(array.ensure_capacity(5000));
}

TEST(SegmentedArray, ReadersSeeElementsPublishedWhileItGrows)
{
	ArenaFixture f(64 << 20);
	SegmentedArrayHeader header;
	SegmentedArray::init(&header, sizeof(std::uint64_t), 3);
	SegmentedArray array(f.arena, &header);
	std::atomic<std::uint64_t> count{0};
	constexpr std::uint64_t total = 200000;
	std::atomic<bool> bad{false};
	std::thread reader([&] {
		while (count.load(std::memory_order_acquire) < total) {
			const std::uint64_t n = count.load(std::memory_order_acquire);
			for (std::uint64_t i = n > 64 ? n - 64 : 0; i < n; ++i)
				if (*array.at_as<std::uint64_t>(i) != i * 3)
					bad = true;
		}
	});
	for (std::uint64_t i = 0; i < total; ++i) {
		ASSERT_TRUE(array.ensure_capacity(i + 1));
		*array.at_as<std::uint64_t>(i) = i * 3;
		count.store(i + 1, std::memory_order_release);
	}
	reader.join();
	EXPECT_FALSE(bad.load());
}

} // namespace
} // namespace engram::core
