#include "core/arena.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <thread>

namespace engram::core {

namespace {

constexpr std::uint64_t k_arena_magic = 0x454e4752414d4132ULL; // "ENGRAMA2"
// Blocks of its own class that allocation looks at before it takes a larger one.
constexpr int k_class_probes = 8;

// The tag in the first unit of a free block.
struct FreeTag {
	std::uint64_t units;
	std::uint64_t next; // offsets in the class list, 0 = none
	std::uint64_t prev;
};
// The size copy in the last 8 bytes of the last unit (apart from FreeTag even
// in a block of one unit).
constexpr std::size_t k_end_tag = k_arena_unit - sizeof(std::uint64_t);
static_assert(sizeof(FreeTag) <= k_end_tag);

unsigned
class_of(std::uint64_t units)
{
	return std::min<unsigned>(static_cast<unsigned>(std::bit_width(units)) - 1, k_arena_classes - 1);
}

std::uint64_t
bitmap_bytes(std::size_t total)
{
	return Arena::rounded((total / k_arena_unit + 63) / 64 * sizeof(std::uint64_t));
}

void
set_bit(std::uint64_t *bitmap, std::uint64_t bit)
{
	bitmap[bit / 64] |= std::uint64_t{1} << (bit % 64);
}

void
clear_bit(std::uint64_t *bitmap, std::uint64_t bit)
{
	bitmap[bit / 64] &= ~(std::uint64_t{1} << (bit % 64));
}

bool
test_bit(const std::uint64_t *bitmap, std::uint64_t bit)
{
	return (bitmap[bit / 64] >> (bit % 64)) & 1;
}

} // namespace

Arena
Arena::create(std::byte *base, std::size_t bytes) noexcept
{
	auto *h = new (base) ArenaHeader{};
	h->magic = k_arena_magic;
	h->total_bytes = bytes;
	h->lock.store(0, std::memory_order_relaxed);
	h->starts_offset = rounded(sizeof(ArenaHeader));
	h->ends_offset = h->starts_offset + bitmap_bytes(bytes);
	// (A region too small for the bitmaps gets no block at all.)
	h->first_block =
		std::max<std::uint64_t>(h->starts_offset, std::min<std::uint64_t>(h->ends_offset + bitmap_bytes(bytes), bytes));
	std::memset(base + h->starts_offset, 0, h->first_block - h->starts_offset);
	h->bump = h->first_block;
	h->used_bytes.store(0, std::memory_order_relaxed);
	h->free_blocks.store(0, std::memory_order_relaxed);
	return Arena(base);
}

std::size_t
Arena::capacity_bytes() const noexcept
{
	const ArenaHeader *h = header();
	return h->total_bytes > h->first_block ? h->total_bytes - h->first_block : 0;
}

void
Arena::lock() const noexcept
{
	auto &l = header()->lock;
	for (;;) {
		if (l.exchange(1, std::memory_order_acquire) == 0)
			return;
		while (l.load(std::memory_order_relaxed) != 0)
			std::this_thread::yield();
	}
}

void
Arena::unlock() const noexcept
{
	header()->lock.store(0, std::memory_order_release);
}

void
Arena::add_free(std::uint64_t offset, std::uint64_t units) noexcept
{
	ArenaHeader *h = header();
	const unsigned c = class_of(units);
	const std::uint64_t next = h->heads[c];
	new (base_ + offset) FreeTag{units, next, 0};
	if (next != 0)
		at<FreeTag>(next)->prev = offset;
	h->heads[c] = offset;
	h->classes_in_use |= std::uint64_t{1} << c;
	const std::uint64_t last_unit = offset + (units - 1) * k_arena_unit;
	std::memcpy(base_ + last_unit + k_end_tag, &units, sizeof units);
	set_bit(at<std::uint64_t>(h->starts_offset), offset / k_arena_unit);
	set_bit(at<std::uint64_t>(h->ends_offset), last_unit / k_arena_unit);
	h->free_blocks.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t
Arena::take_free(std::uint64_t offset) noexcept
{
	ArenaHeader *h = header();
	const FreeTag tag = *at<FreeTag>(offset);
	if (tag.prev != 0)
		at<FreeTag>(tag.prev)->next = tag.next;
	else {
		const unsigned c = class_of(tag.units);
		h->heads[c] = tag.next;
		if (tag.next == 0)
			h->classes_in_use &= ~(std::uint64_t{1} << c);
	}
	if (tag.next != 0)
		at<FreeTag>(tag.next)->prev = tag.prev;
	const std::uint64_t last_unit = offset + (tag.units - 1) * k_arena_unit;
	std::memset(base_ + offset, 0, sizeof(FreeTag));
	std::memset(base_ + last_unit + k_end_tag, 0, sizeof(std::uint64_t));
	clear_bit(at<std::uint64_t>(h->starts_offset), offset / k_arena_unit);
	clear_bit(at<std::uint64_t>(h->ends_offset), last_unit / k_arena_unit);
	h->free_blocks.fetch_sub(1, std::memory_order_relaxed);
	return tag.units;
}

std::uint64_t
Arena::find_free(std::uint64_t units) const noexcept
{
	const ArenaHeader *h = header();
	const unsigned c = class_of(units);
	std::uint64_t block = h->heads[c];
	for (int probes = 0; block != 0 && probes < k_class_probes; ++probes, block = at<FreeTag>(block)->next)
		if (at<FreeTag>(block)->units >= units)
			return block;
	// Every block of a larger class fits; the smallest such class splits least.
	const std::uint64_t larger = c + 1 < 64 ? h->classes_in_use & ~((std::uint64_t{2} << c) - 1) : 0;
	if (larger != 0)
		return h->heads[std::countr_zero(larger)];
	for (; block != 0; block = at<FreeTag>(block)->next)
		if (at<FreeTag>(block)->units >= units)
			return block;
	return 0;
}

std::uint64_t
Arena::allocate(std::size_t bytes) noexcept
{
	if (bytes == 0)
		return 0;
	const std::uint64_t need = rounded(bytes);
	const std::uint64_t units = need / k_arena_unit;
	ArenaHeader *h = header();
	lock();
	std::uint64_t found = find_free(units);
	if (found != 0) {
		const std::uint64_t held = take_free(found);
		if (held > units)
			add_free(found + need, held - units);
	} else if (h->bump + need <= h->total_bytes) {
		found = h->bump;
		h->bump += need;
	}
	if (found != 0)
		h->used_bytes.fetch_add(need, std::memory_order_relaxed);
	unlock();
	return found;
}

void
Arena::release(std::uint64_t offset, std::size_t bytes) noexcept
{
	if (offset == 0 || bytes == 0)
		return;
	ArenaHeader *h = header();
	const std::uint64_t freed = rounded(bytes);
	std::uint64_t start = offset;
	std::uint64_t end = offset + freed;
	// Outside the lock: other allocations need not wait for a large block's memset.
	std::memset(base_ + start, 0, freed);
	lock();
	const auto *ends = at<const std::uint64_t>(h->ends_offset);
	if (start > h->first_block && test_bit(ends, start / k_arena_unit - 1)) {
		std::uint64_t left_units;
		std::memcpy(&left_units, base_ + start - k_arena_unit + k_end_tag, sizeof left_units);
		start -= left_units * k_arena_unit;
		(void) take_free(start);
	}
	if (end < h->bump && test_bit(at<const std::uint64_t>(h->starts_offset), end / k_arena_unit))
		end += take_free(end) * k_arena_unit;
	if (end == h->bump)
		h->bump = start;
	else
		add_free(start, (end - start) / k_arena_unit);
	h->used_bytes.fetch_sub(freed, std::memory_order_relaxed);
	unlock();
}

} // namespace engram::core
