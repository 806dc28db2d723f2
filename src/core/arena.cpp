#include "core/arena.hpp"

#include <cstring>
#include <new>
#include <thread>

namespace engram::core {

namespace {
constexpr std::uint64_t k_arena_magic = 0x454e4752414d4152ULL; // "ENGRAMAR"
}

Arena
Arena::create(std::byte *base, std::size_t bytes) noexcept
{
	auto *h = new (base) ArenaHeader{};
	h->magic = k_arena_magic;
	h->total_bytes = bytes;
	h->lock.store(0, std::memory_order_relaxed);
	h->free_count = 0;
	h->bump = rounded(sizeof(ArenaHeader));
	h->used_bytes.store(0, std::memory_order_relaxed);
	return Arena(base);
}

std::size_t
Arena::capacity_bytes() const noexcept
{
	return header()->total_bytes - rounded(sizeof(ArenaHeader));
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

std::uint64_t
Arena::allocate(std::size_t bytes) noexcept
{
	if (bytes == 0)
		return 0;
	const std::uint64_t need = rounded(bytes);
	ArenaHeader *h = header();
	lock();
	std::uint64_t found = 0;
	for (std::uint32_t i = 0; i < h->free_count; ++i) {
		ArenaFreeBlock &b = h->free_blocks[i];
		if (b.bytes < need)
			continue;
		found = b.offset;
		b.offset += need;
		b.bytes -= need;
		if (b.bytes == 0)
			b = h->free_blocks[--h->free_count];
		break;
	}
	if (found == 0 && h->bump + need <= h->total_bytes) {
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
	if (offset == 0)
		return;
	ArenaHeader *h = header();
	std::uint64_t start = offset;
	std::uint64_t end = offset + rounded(bytes);
	const std::uint64_t freed = end - start;
	// Outside the lock: other allocations need not wait for a large block's memset.
	std::memset(base_ + start, 0, freed);
	lock();
	// Merge with free neighbours; each merge removes one entry, so this ends.
	for (std::uint32_t i = 0; i < h->free_count;) {
		ArenaFreeBlock &b = h->free_blocks[i];
		if (b.offset + b.bytes == start || end == b.offset) {
			start = std::min(start, b.offset);
			end = std::max(end, b.offset + b.bytes);
			b = h->free_blocks[--h->free_count];
			continue;
		}
		++i;
	}
	bool reusable = true;
	if (end == h->bump)
		h->bump = start;
	else if (h->free_count < k_arena_max_free_blocks)
		h->free_blocks[h->free_count++] = {start, end - start};
	else
		reusable = false;
	// A full free list keeps the block counted as used until restart; with
	// chunks that double in size this needs over a thousand live fragments.
	if (reusable)
		h->used_bytes.fetch_sub(freed, std::memory_order_relaxed);
	unlock();
}

} // namespace engram::core
