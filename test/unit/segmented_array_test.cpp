// A segmented array grows past its header's direct chunks into index blocks
// (segmented_array.hpp) without moving an element, also while several
// threads grow it and others read it, and gives every block back. Small
// chunk caps make the arrays reach the index blocks with little memory: the
// former fixed header of 256 chunks stopped them at about a million elements.
#include "core/segmented_array.hpp"

#include <gtest/gtest.h>

#include "heap_region.hpp"
#include "sanitizers.hpp"

#include <atomic>
#include <thread>
#include <vector>

namespace engram::core {
namespace {

using test_support::Region;

// The value element i holds in these tests (never 0, which means "not written").
std::uint64_t
value_of(std::uint64_t i)
{
	return i * 3 + 1;
}

std::uint64_t
load_element(const SegmentedArray &array, std::uint64_t i)
{
	return std::atomic_ref<std::uint64_t>(*array.at_as<std::uint64_t>(i)).load(std::memory_order_acquire);
}

void
store_element(SegmentedArray &array, std::uint64_t i)
{
	std::atomic_ref<std::uint64_t>(*array.at_as<std::uint64_t>(i)).store(value_of(i), std::memory_order_release);
}

// Elements held when the former 256-slot header was full, for these chunk sizes.
std::uint64_t
former_ceiling(std::uint32_t first_log2, std::uint32_t max_log2)
{
	const std::uint64_t doubling = max_log2 - first_log2 + 1;
	return (((std::uint64_t{1} << doubling) - 1) << first_log2) + ((256 - doubling) << max_log2);
}

TEST(SegmentedArray, GrowsPastTheFormerCeilingAtASmallElementSize)
{
	// 16-byte elements in chunks of up to 4096 (64 KB): 224 direct chunks hold
	// about 0.9 M elements, the rest goes through one index block.
	constexpr std::uint32_t first = 4, cap = 12;
	constexpr std::uint64_t total = 2'200'000;
	ASSERT_GT(total, former_ceiling(first, cap));
	Region region(64 << 20);
	SegmentedArrayHeader header;
	SegmentedArray::init(&header, 16, first, cap);
	SegmentedArray array(region.arena, &header);
	std::vector<std::byte *> addresses;
	addresses.reserve(total);
	for (std::uint64_t i = 0; i < total; ++i) {
		if (i >= array.capacity()) {
			ASSERT_TRUE(array.ensure_capacity(i + 1)) << i;
		}
		store_element(array, i);
		addresses.push_back(array.at(i));
	}
	for (std::uint64_t i = 0; i < total; ++i) {
		ASSERT_EQ(load_element(array, i), value_of(i)) << i;
		ASSERT_EQ(array.at(i), addresses[i]) << "element " << i << " moved";
	}
	// 9 doubling chunks hold 8176, each later chunk 4096: 545 chunks in all.
	EXPECT_EQ(array.capacity(), 8176u + 536u * 4096u);
	EXPECT_EQ(array.allocated_bytes(), region.arena.used_bytes());
	array.release_all();
	EXPECT_EQ(region.arena.used_bytes(), 0u);
}

TEST(SegmentedArray, SpreadsOverSeveralIndexBlocks)
{
	// One-page chunks of 256 elements: past 224 + 4096 + 4096 chunks, so the
	// third index block is in use.
	constexpr std::uint32_t first = 4, cap = 8;
	constexpr std::uint64_t total = 2'200'000;
	Region region(48 << 20);
	SegmentedArrayHeader header;
	SegmentedArray::init(&header, 16, first, cap);
	SegmentedArray array(region.arena, &header);
	ASSERT_TRUE(array.ensure_capacity(total));
	for (std::uint64_t i = 0; i < total; ++i)
		store_element(array, i);
	for (std::uint64_t i = 0; i < total; ++i)
		ASSERT_EQ(load_element(array, i), value_of(i)) << i;
	EXPECT_GE(array.capacity(), total);
	EXPECT_LT(array.capacity(), total + 256);
	EXPECT_NE(header.index_blocks[2].load(), 0u);
	EXPECT_EQ(header.index_blocks[3].load(), 0u);
	EXPECT_EQ(array.allocated_bytes(), region.arena.used_bytes());
	// Consecutive elements of one chunk are contiguous.
	EXPECT_EQ(array.at(2'000'000 + 1), array.at(2'000'000) + 16);
	array.release_all();
	EXPECT_EQ(region.arena.used_bytes(), 0u);
}

TEST(SegmentedArray, RefusesMoreThanItsDirectoryHoldsWithoutAllocating)
{
	Region region(1 << 20);
	SegmentedArrayHeader header;
	SegmentedArray::init(&header, 64, 0, 0 + 1); // chunks of 1, then 2 elements
	SegmentedArray array(region.arena, &header);
	const std::uint64_t most = 1 + 2 * (k_max_chunks - 1);
	EXPECT_FALSE(array.ensure_capacity(most + 1));
	EXPECT_EQ(region.arena.used_bytes(), 0u);
	EXPECT_EQ(array.capacity(), 0u);
}

TEST(SegmentedArray, ReportsExhaustionInsideAnIndexBlock)
{
	// The arena runs out after the direct chunks: ensure_capacity says so,
	// and what it did allocate stays usable and is given back on release.
	Region region(1200 * 4096);
	SegmentedArrayHeader header;
	SegmentedArray::init(&header, 64, 6, 6); // one page per chunk
	SegmentedArray array(region.arena, &header);
	EXPECT_FALSE(array.ensure_capacity(2000 * 64));
	const std::uint64_t held = array.capacity();
	EXPECT_GT(held, k_direct_chunks * 64);
	EXPECT_TRUE(array.ensure_capacity(held));
	*array.at_as<std::uint64_t>(held - 1) = 7;
	EXPECT_EQ(array.allocated_bytes(), region.arena.used_bytes());
	array.release_all();
	EXPECT_EQ(region.arena.used_bytes(), 0u);
}

TEST(SegmentedArray, SeveralThreadsGrowItWhileOthersRead)
{
	// Writers take indices from a shared counter, grow the array to cover
	// each, write it and raise `ensured`; readers index only below `ensured`
	// and must find every element either unwritten or holding its value. Small
	// chunks make most growth steps race, also for index blocks.
	const std::uint64_t total = test_support::k_thread_sanitizer ? 150'000 : 600'000;
	constexpr unsigned writers = 4, readers = 2;
	Region region(192 << 20);
	SegmentedArrayHeader header;
	SegmentedArray::init(&header, 16, 2, 6);
	SegmentedArray array(region.arena, &header);
	std::atomic<std::uint64_t> next{0}, ensured{0}, written{0};
	std::atomic<bool> failed{false}, bad{false};
	std::vector<std::thread> threads;
	for (unsigned w = 0; w < writers; ++w)
		threads.emplace_back([&] {
			for (std::uint64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < total;) {
				if (!array.ensure_capacity(i + 1)) {
					failed = true;
					return;
				}
				std::uint64_t seen = ensured.load(std::memory_order_relaxed);
				while (seen < i + 1 && !ensured.compare_exchange_weak(seen, i + 1, std::memory_order_release,
																	  std::memory_order_relaxed))
					;
				store_element(array, i);
				written.fetch_add(1, std::memory_order_relaxed);
			}
		});
	for (unsigned r = 0; r < readers; ++r)
		threads.emplace_back([&, r] {
			std::uint64_t probe = r;
			while (written.load(std::memory_order_relaxed) < total && !failed.load(std::memory_order_relaxed)) {
				const std::uint64_t limit = ensured.load(std::memory_order_acquire);
				for (unsigned j = 0; j < 64 && limit > 0; ++j) {
					probe = probe * 6364136223846793005ULL + 1442695040888963407ULL;
					const std::uint64_t i = (probe >> 17) % limit;
					const std::uint64_t v = load_element(array, i);
					if (v != 0 && v != value_of(i))
						bad = true;
				}
			}
		});
	for (std::thread &t : threads)
		t.join();
	ASSERT_FALSE(failed.load()) << "the arena is large enough";
	EXPECT_FALSE(bad.load());
	for (std::uint64_t i = 0; i < total; ++i)
		ASSERT_EQ(load_element(array, i), value_of(i)) << i;
	EXPECT_GT(header.index_blocks[0].load(), 0u) << "the array reached its index blocks";
	// Racing growers gave back every chunk and index block they lost.
	EXPECT_EQ(array.allocated_bytes(), region.arena.used_bytes());
	array.release_all();
	EXPECT_EQ(region.arena.used_bytes(), 0u);
}

} // namespace
} // namespace engram::core
