// Arena: a block allocator over one contiguous region addressed by offsets.
//
// The region may be a heap buffer (unit tests), a slice of PostgreSQL's main
// shared memory (the extension) or a file image: nothing inside it is a
// pointer, so every process can map it at any address. Offset 0 is the arena
// header itself and therefore never a valid block, which lets 0 mean "none".
//
// Allocation is rare (whole chunks of a segmented array, never single
// vectors), so a short spin lock over a first-fit free list is enough; the
// lock is held for a bounded scan of the free list and never across I/O.
// Blocks are page-rounded and 64-byte aligned relative to the region base,
// which itself must be 64-byte aligned. Freed blocks are coalesced with their
// neighbours and with the bump frontier, so a dropped space's memory is reused
// by any later space regardless of its dimension.
//
// Erasure. release() overwrites a block with zeros before it joins the free
// list, so free memory never holds what a block held: a forgotten vector
// cannot outlive the graph that stored it in a free block, nor reappear in
// the unused tail of a later block carved from it. Coalescing and allocation
// move offsets, never bytes, so the block itself was the only copy. Fresh
// memory (a zeroed heap buffer, shared memory the kernel hands out) starts
// zero, so all free memory is zero. The cost is one memset of every byte
// freed (docs/hnsw.md, Compaction).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/no_postgres.hpp"

namespace engram::core {

inline constexpr std::size_t k_arena_page = 4096;
inline constexpr std::size_t k_arena_max_free_blocks = 1024;

struct ArenaFreeBlock {
	std::uint64_t offset;
	std::uint64_t bytes;
};

struct ArenaHeader {
	std::uint64_t magic;
	std::uint64_t total_bytes;
	std::atomic<std::uint32_t> lock;
	std::uint32_t free_count;
	std::uint64_t bump;
	std::atomic<std::uint64_t> used_bytes;
	ArenaFreeBlock free_blocks[k_arena_max_free_blocks];
};
static_assert(std::is_standard_layout_v<ArenaHeader>);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

class Arena {
public:
	// Lays out a fresh arena over [base, base + bytes).
	static Arena create(std::byte *base, std::size_t bytes) noexcept;
	// Uses an arena that create() already laid out (possibly in another process).
	explicit Arena(std::byte *base) noexcept : base_(base) {}

	// Returns the offset of a block of at least `bytes`, or 0 when the arena is exhausted.
	std::uint64_t allocate(std::size_t bytes) noexcept;
	// Overwrites a block with zeros and returns it; `bytes` must be what was
	// asked of allocate(), and nobody may use the block any more.
	void release(std::uint64_t offset, std::size_t bytes) noexcept;

	std::size_t used_bytes() const noexcept { return header()->used_bytes.load(std::memory_order_relaxed); }
	std::size_t capacity_bytes() const noexcept;
	std::byte *base() const noexcept { return base_; }

	template <typename T>
	T *at(std::uint64_t offset) const noexcept
	{
		return reinterpret_cast<T *>(base_ + offset);
	}

	static std::size_t rounded(std::size_t bytes) noexcept { return (bytes + k_arena_page - 1) & ~(k_arena_page - 1); }

private:
	ArenaHeader *header() const noexcept { return reinterpret_cast<ArenaHeader *>(base_); }
	void lock() const noexcept;
	void unlock() const noexcept;

	std::byte *base_;
};

} // namespace engram::core
