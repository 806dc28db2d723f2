// SegmentedArray: a growable array of fixed-stride elements inside an Arena.
//
// Chunks double in size from the first one until they reach about
// k_max_chunk_bytes, then stay at that size: a small space costs only its
// first chunk, growth needs few allocations, and the room allocated but not
// yet used stays below one full chunk (plain doubling would leave up to half
// of a large index unused).
//
// The directory of chunk offsets has two levels. The header holds the
// offsets of the first k_direct_chunks chunks itself, plus the offsets of up
// to k_index_blocks index blocks: arena blocks of k_index_entries chunk
// offsets each, for every later chunk. The header is plain data that lives
// wherever its owner lives (a graph header in shared memory, a test's stack),
// and index blocks are found by offset, so the whole structure is position
// independent. With chunks of at least 16 MB (the default cap, whatever the
// stride) an array can hold over 2 TB, more than engram.memory_limit allows,
// so a space grows until the arena is full. A fixed header alone (the former
// design, 256 chunks) stopped a graph at about 2 M vectors of 768 dimensions.
//
// Why two levels rather than chunks that keep doubling past the cap: the
// unused tail stays below one chunk however large the array grows (doubling
// in steps of an eighth would still leave up to an eighth of a 100 GB space
// allocated and unused, counted against memory_limit), and the arena never
// has to find a contiguous block larger than one chunk, so a large space can
// still grow into memory that other spaces fragmented. The price is one more
// dependent load in at(), paid only past the direct chunks (about 1.5 GB into
// the array); the index blocks of even a 1 TB array take 512 KB and stay in
// cache. Elements in the direct chunks cost what they always did: at() is a
// few integer operations and one acquire load from the header.
//
// Why 64 direct chunks: a graph has five arrays, and their headers are most
// of what a space with a handful of rows costs (with 224 direct chunks, 10 KB
// per graph; with 64, under 4 KB), which matters for 100,000 small spaces;
// 64 still hold every doubling chunk (at most 25) and over a gigabyte after.
//
// Growth never moves an element: a new chunk (or index block, zeroed first)
// is allocated and its offset is published into an empty slot with a release
// CAS; two threads growing at once both allocate and the loser gives its
// block back. Chunks are added strictly in order (a thread fills slot k only
// after seeing slot k - 1 filled), so the filled slots are always a prefix:
// readers that index an element below a count they acquired from whoever
// ensured it always find its chunk, and a grower finds the first empty slot
// by binary search.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

#include "core/arena.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

inline constexpr std::size_t k_max_chunk_bytes = std::size_t{32} << 20;
inline constexpr std::size_t k_direct_chunks = 64;
inline constexpr std::size_t k_index_blocks = 32;
inline constexpr std::size_t k_index_entries = 4096; // chunk offsets per index block (32 KB)
inline constexpr std::uint64_t k_max_chunks = k_direct_chunks + k_index_blocks * k_index_entries;

struct SegmentedArrayHeader {
	std::uint32_t stride;                                    // bytes per element, a multiple of 64 or a power of two
	std::uint32_t first_chunk_log2;                          // chunk 0 holds 1 << first_chunk_log2 elements
	std::uint32_t max_chunk_log2;                            // no chunk holds more than 1 << max_chunk_log2 elements
	std::uint32_t doubling_chunks;                           // chunks that double in size before the cap
	std::uint64_t doubling_end;                              // elements those chunks hold together
	std::atomic<std::uint64_t> chunks[k_direct_chunks];      // offsets of the first chunks
	std::atomic<std::uint64_t> index_blocks[k_index_blocks]; // offsets of index blocks
};
static_assert(std::is_standard_layout_v<SegmentedArrayHeader>);
// Every doubling chunk has a direct slot (first_chunk_log2 >= 0, chunks of at most 2^24 elements).
static_assert(k_direct_chunks >= 25);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

class SegmentedArray {
public:
	SegmentedArray(Arena arena, SegmentedArrayHeader *header) noexcept : arena_(arena), header_(header) {}

	// max_chunk_log2 = 0 picks the largest power of two of elements that fits
	// k_max_chunk_bytes (never below the first chunk).
	static void init(SegmentedArrayHeader *header, std::uint32_t stride, std::uint32_t first_chunk_log2,
					 std::uint32_t max_chunk_log2 = 0) noexcept
	{
		if (max_chunk_log2 == 0)
			max_chunk_log2 = static_cast<std::uint32_t>(std::bit_width(k_max_chunk_bytes / stride) - 1);
		max_chunk_log2 = std::max(first_chunk_log2, max_chunk_log2);
		header->stride = stride;
		header->first_chunk_log2 = first_chunk_log2;
		header->max_chunk_log2 = max_chunk_log2;
		header->doubling_chunks = max_chunk_log2 - first_chunk_log2 + 1;
		header->doubling_end = ((std::uint64_t{1} << header->doubling_chunks) - 1) << first_chunk_log2;
		for (auto &c : header->chunks)
			c.store(0, std::memory_order_relaxed);
		for (auto &b : header->index_blocks)
			b.store(0, std::memory_order_relaxed);
	}

	// Element i; the caller guarantees i is below a capacity it ensured or a
	// count it acquired from whoever ensured it.
	std::byte *at(std::uint64_t i) const noexcept
	{
		const SegmentedArrayHeader &h = *header_;
		std::uint64_t offset;
		if (i < h.doubling_end) {
			const std::uint32_t f = h.first_chunk_log2;
			const auto k = static_cast<unsigned>(std::bit_width((i >> f) + 1) - 1);
			offset = h.chunks[k].load(std::memory_order_acquire);
			i -= ((std::uint64_t{1} << k) - 1) << f;
		} else {
			const std::uint32_t c = h.max_chunk_log2;
			const std::uint64_t beyond = i - h.doubling_end;
			const std::uint64_t k = h.doubling_chunks + (beyond >> c);
			offset = k < k_direct_chunks ? h.chunks[k].load(std::memory_order_acquire) : indexed_chunk(k);
			i = beyond & ((std::uint64_t{1} << c) - 1);
		}
		return arena_.base() + offset + i * h.stride;
	}

	template <typename T>
	T *at_as(std::uint64_t i) const noexcept
	{
		return reinterpret_cast<T *>(at(i));
	}

	// Makes elements [0, n) addressable. False when the arena is exhausted (or
	// n exceeds what any directory holds); chunks allocated before the failure
	// stay and count towards capacity().
	bool ensure_capacity(std::uint64_t n) noexcept
	{
		if (n == 0)
			return true;
		const std::uint64_t last = chunk_of(n - 1);
		if (last >= k_max_chunks)
			return false;
		if (chunk_offset(last) != 0)
			return true; // slots fill in order: every chunk below it is there too
		for (std::uint64_t k = filled_chunks(); k <= last; ++k)
			if (!fill(k))
				return false;
		return true;
	}

	// Elements addressable without further allocation.
	std::uint64_t capacity() const noexcept
	{
		const std::uint64_t n = filled_chunks();
		return n == 0 ? 0 : capacity_of_first(n - 1);
	}

	// Arena bytes held: chunks and index blocks.
	std::size_t allocated_bytes() const noexcept
	{
		const std::uint64_t n = filled_chunks();
		const std::uint64_t doubling = std::min<std::uint64_t>(n, header_->doubling_chunks);
		std::size_t total = 0;
		for (std::uint64_t k = 0; k < doubling; ++k)
			total += Arena::rounded(chunk_bytes(k));
		total += (n - doubling) * Arena::rounded(capped_chunk_bytes());
		for (const auto &b : header_->index_blocks)
			if (b.load(std::memory_order_acquire) != 0)
				total += Arena::rounded(k_index_block_bytes);
		return total;
	}

	// Returns every chunk and index block to the arena; no reader may still use the array.
	void release_all() noexcept
	{
		for (std::uint64_t k = 0; k < k_direct_chunks; ++k)
			release_chunk(header_->chunks[k], k);
		for (std::uint64_t b = 0; b < k_index_blocks; ++b) {
			const std::uint64_t block = header_->index_blocks[b].exchange(0, std::memory_order_acq_rel);
			if (block == 0)
				continue;
			auto *entries = arena_.at<std::atomic<std::uint64_t>>(block);
			for (std::uint64_t e = 0; e < k_index_entries; ++e)
				release_chunk(entries[e], k_direct_chunks + b * k_index_entries + e);
			arena_.release(block, k_index_block_bytes);
		}
	}

	std::uint32_t stride() const noexcept { return header_->stride; }

	// One past the last index of the chunk that holds element i.
	std::uint64_t chunk_end(std::uint64_t i) const noexcept { return capacity_of_first(chunk_of(i)); }
	// The first index at or after i where n elements (n no larger than chunk
	// 0) lie in one chunk: i itself, or the start of the chunk after i's.
	std::uint64_t run_start(std::uint64_t i, std::uint64_t n) const noexcept
	{
		return n == 0 || i + n <= chunk_end(i) ? i : chunk_end(i);
	}

private:
	static constexpr std::size_t k_index_block_bytes = k_index_entries * sizeof(std::uint64_t);

	// The chunk that holds element i.
	std::uint64_t chunk_of(std::uint64_t i) const noexcept
	{
		const SegmentedArrayHeader &h = *header_;
		if (i < h.doubling_end)
			return static_cast<std::uint64_t>(std::bit_width((i >> h.first_chunk_log2) + 1) - 1);
		return h.doubling_chunks + ((i - h.doubling_end) >> h.max_chunk_log2);
	}
	// Offset of chunk k >= k_direct_chunks (0 if it is not there yet).
	std::uint64_t indexed_chunk(std::uint64_t k) const noexcept
	{
		const std::uint64_t j = k - k_direct_chunks;
		const std::uint64_t block = header_->index_blocks[j / k_index_entries].load(std::memory_order_acquire);
		if (block == 0)
			return 0;
		return arena_.at<std::atomic<std::uint64_t>>(block)[j % k_index_entries].load(std::memory_order_acquire);
	}
	std::uint64_t chunk_offset(std::uint64_t k) const noexcept
	{
		return k < k_direct_chunks ? header_->chunks[k].load(std::memory_order_acquire) : indexed_chunk(k);
	}
	// Chunks allocated so far (they are always the first ones).
	std::uint64_t filled_chunks() const noexcept
	{
		std::uint64_t low = 0, high = k_max_chunks;
		while (low < high) {
			const std::uint64_t mid = low + (high - low) / 2;
			if (chunk_offset(mid) != 0)
				low = mid + 1;
			else
				high = mid;
		}
		return low;
	}
	// The slot chunk k's offset goes into, allocating its index block if
	// needed; nullptr when the arena cannot hold the block.
	std::atomic<std::uint64_t> *slot_for(std::uint64_t k) noexcept
	{
		if (k < k_direct_chunks)
			return &header_->chunks[k];
		const std::uint64_t j = k - k_direct_chunks;
		std::atomic<std::uint64_t> &index = header_->index_blocks[j / k_index_entries];
		std::uint64_t block = index.load(std::memory_order_acquire);
		if (block == 0) {
			const std::uint64_t fresh = arena_.allocate(k_index_block_bytes);
			if (fresh == 0)
				return nullptr;
			std::byte *entries = arena_.at<std::byte>(fresh);
			for (std::size_t e = 0; e < k_index_entries; ++e)
				new (entries + e * sizeof(std::uint64_t)) std::atomic<std::uint64_t>(0);
			if (index.compare_exchange_strong(block, fresh, std::memory_order_acq_rel))
				block = fresh;
			else
				arena_.release(fresh, k_index_block_bytes);
		}
		return arena_.at<std::atomic<std::uint64_t>>(block) + j % k_index_entries;
	}
	// Makes sure chunk k exists; every chunk below it must exist already.
	bool fill(std::uint64_t k) noexcept
	{
		std::atomic<std::uint64_t> *slot = slot_for(k);
		if (slot == nullptr)
			return false;
		if (slot->load(std::memory_order_acquire) != 0)
			return true;
		const std::size_t bytes = chunk_bytes(k);
		const std::uint64_t offset = arena_.allocate(bytes);
		if (offset == 0)
			return false;
		std::uint64_t expected = 0;
		if (!slot->compare_exchange_strong(expected, offset, std::memory_order_acq_rel))
			arena_.release(offset, bytes);
		return true;
	}
	void release_chunk(std::atomic<std::uint64_t> &slot, std::uint64_t k) noexcept
	{
		const std::uint64_t offset = slot.exchange(0, std::memory_order_acq_rel);
		if (offset != 0)
			arena_.release(offset, chunk_bytes(k));
	}
	// Elements held by chunks 0..k together.
	std::uint64_t capacity_of_first(std::uint64_t k) const noexcept
	{
		const SegmentedArrayHeader &h = *header_;
		if (k < h.doubling_chunks)
			return ((std::uint64_t{1} << (k + 1)) - 1) << h.first_chunk_log2;
		return h.doubling_end + ((k - h.doubling_chunks + 1) << h.max_chunk_log2);
	}
	std::size_t capped_chunk_bytes() const noexcept
	{
		return (std::size_t{1} << header_->max_chunk_log2) * header_->stride;
	}
	std::size_t chunk_bytes(std::uint64_t k) const noexcept
	{
		if (k >= header_->doubling_chunks)
			return capped_chunk_bytes();
		return (std::size_t{1} << (header_->first_chunk_log2 + k)) * header_->stride;
	}

	Arena arena_;
	SegmentedArrayHeader *header_;
};

} // namespace engram::core
