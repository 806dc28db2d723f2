// Arena: a block allocator over one contiguous region addressed by offsets.
//
// The region may be a heap buffer (unit tests), a slice of PostgreSQL's main
// shared memory (the extension) or a file image: nothing inside it is a
// pointer, so every process can map it at any address. Offset 0 is the arena
// header itself and therefore never a valid block, which lets 0 mean "none".
//
// Allocation is rare (whole chunks of a segmented array, never single
// vectors), so a short spin lock is enough; it is held for a few list and
// bitmap operations and never across I/O or a memset.
//
// Blocks are multiples of 64 bytes (k_arena_unit) and 64-byte aligned
// relative to the region base, which itself must be 64-byte aligned: a
// space of a few rows costs a few kilobytes, not a page per array chunk, so
// 100,000 small spaces fit. Free blocks carry boundary tags: the first unit
// holds the block's size and its links in a free list, the last 8 bytes of
// its last unit hold the size again, and two bitmaps over the units mark
// where free blocks start and end. Freeing a block therefore finds its free
// neighbours in O(1) and merges with them (and with the bump frontier), and
// there is no limit to the number of free blocks: memory freed by dropping
// any number of spaces in any order is all reusable, by any later space,
// whatever its dimension. Free blocks sit in one list per size class (the
// power of two below their size in units); allocation takes the first fit
// among a few blocks of its own class, else any block of the smallest larger
// class that has one (all of which fit), else the bump frontier.
//
// Erasure. release() overwrites a block with zeros before it joins the free
// lists, so free memory never holds what a block held: a forgotten vector
// cannot outlive the graph that stored it in a free block, nor reappear in
// the unused tail of a later block carved from it. The only non-zero bytes of
// free memory are the boundary tags (sizes and offsets), cleared again when
// the block is handed out or merged; coalescing and allocation move offsets,
// never bytes, so the block itself was the only copy. Fresh memory (a zeroed
// heap buffer, shared memory the kernel hands out) starts zero, so every
// block handed out is zero. The cost is one memset of every byte freed
// (docs/hnsw.md, Compaction).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/no_postgres.hpp"

namespace engram::core {

inline constexpr std::size_t k_arena_unit = 64;
// Size classes of free blocks: class c holds blocks of [2^c, 2^(c+1)) units.
inline constexpr unsigned k_arena_classes = 48;

struct ArenaHeader {
	std::uint64_t magic;
	std::uint64_t total_bytes;
	std::atomic<std::uint32_t> lock;
	std::uint32_t unused;
	std::uint64_t starts_offset; // bitmap: bit u is set when a free block starts at unit u
	std::uint64_t ends_offset;   // bitmap: bit u is set when a free block ends at unit u
	std::uint64_t first_block;   // blocks lie in [first_block, total_bytes)
	std::uint64_t bump;          // memory at and after it is untouched (or came back) and zero
	std::atomic<std::uint64_t> used_bytes;
	std::uint64_t classes_in_use;           // bit c: heads[c] is not 0
	std::uint64_t heads[k_arena_classes];   // first free block of each class, 0 if none
	std::atomic<std::uint64_t> free_blocks; // blocks in the lists, for tests and views
};
static_assert(std::is_standard_layout_v<ArenaHeader>);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

class Arena {
public:
	// Lays out a fresh arena over [base, base + bytes).
	static Arena create(std::byte *base, std::size_t bytes) noexcept;
	// Uses an arena that create() already laid out (possibly in another process).
	explicit Arena(std::byte *base) noexcept : base_(base) {}

	// Returns the offset of a block of at least `bytes`, all zero, or 0 when
	// the arena has no free block that large.
	std::uint64_t allocate(std::size_t bytes) noexcept;
	// Overwrites a block with zeros and returns it; `bytes` must be what was
	// asked of allocate(), and nobody may use the block any more.
	void release(std::uint64_t offset, std::size_t bytes) noexcept;

	std::size_t used_bytes() const noexcept { return header()->used_bytes.load(std::memory_order_relaxed); }
	// Bytes blocks may take: the region less the header and the bitmaps.
	std::size_t capacity_bytes() const noexcept;
	// One past the last byte of the region (offsets of blocks lie below it).
	std::size_t region_bytes() const noexcept { return header()->total_bytes; }
	std::uint64_t free_blocks() const noexcept { return header()->free_blocks.load(std::memory_order_relaxed); }
	std::byte *base() const noexcept { return base_; }

	template <typename T>
	T *at(std::uint64_t offset) const noexcept
	{
		return reinterpret_cast<T *>(base_ + offset);
	}

	// What a block asked for `bytes` takes of the arena.
	static std::size_t rounded(std::size_t bytes) noexcept { return (bytes + k_arena_unit - 1) & ~(k_arena_unit - 1); }

private:
	ArenaHeader *header() const noexcept { return reinterpret_cast<ArenaHeader *>(base_); }
	void lock() const noexcept;
	void unlock() const noexcept;
	// Under the lock: put a free block of `units` units at `offset` into its
	// list and the bitmaps, or take it out again (clearing its tags).
	void add_free(std::uint64_t offset, std::uint64_t units) noexcept;
	std::uint64_t take_free(std::uint64_t offset) noexcept;
	std::uint64_t find_free(std::uint64_t units) const noexcept;

	std::byte *base_;
};

} // namespace engram::core
