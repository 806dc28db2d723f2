// SegmentedArray: a growable array of fixed-stride elements inside an Arena.
//
// Chunks double in size from the first one until they reach about
// k_max_chunk_bytes, then stay at that size: a small space costs only its
// first chunk, growth needs few allocations, and the room allocated but not
// yet used stays below one full chunk (plain doubling would leave up to half
// of a large index unused). The header holding the chunk offsets is plain data
// that lives wherever its owner lives (a space slot in shared memory, a graph
// header, a test's stack), so the whole structure is position independent.
//
// Growth never moves an element: a new chunk is allocated and its offset is
// published into an empty slot with a release CAS, so readers that index an
// element below the count they acquired from the owner always find its chunk.
// Two threads growing at once both allocate; the loser gives its chunk back.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/arena.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

inline constexpr std::size_t k_segment_slots = 256;
inline constexpr std::size_t k_max_chunk_bytes = std::size_t{32} << 20;

struct SegmentedArrayHeader {
	std::uint32_t stride;           // bytes per element, a multiple of 64 or a power of two
	std::uint32_t first_chunk_log2; // chunk 0 holds 1 << first_chunk_log2 elements
	std::uint32_t max_chunk_log2;   // no chunk holds more than 1 << max_chunk_log2 elements
	std::uint32_t unused;
	std::atomic<std::uint64_t> chunks[k_segment_slots];
};
static_assert(std::is_standard_layout_v<SegmentedArrayHeader>);

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
		header->stride = stride;
		header->first_chunk_log2 = first_chunk_log2;
		header->max_chunk_log2 = std::max(first_chunk_log2, max_chunk_log2);
		header->unused = 0;
		for (auto &c : header->chunks)
			c.store(0, std::memory_order_relaxed);
	}

	// Element i; the caller guarantees i is below a capacity it ensured or a
	// count it acquired from whoever ensured it.
	std::byte *at(std::uint64_t i) const noexcept
	{
		const std::uint32_t f = header_->first_chunk_log2;
		const std::uint32_t c = header_->max_chunk_log2;
		const std::uint64_t doubling_end = doubling_capacity();
		unsigned k;
		std::uint64_t first_of_chunk;
		if (i < doubling_end) {
			k = static_cast<unsigned>(std::bit_width((i >> f) + 1) - 1);
			first_of_chunk = ((std::uint64_t{1} << k) - 1) << f;
		} else {
			const std::uint64_t beyond = (i - doubling_end) >> c;
			k = doubling_chunks() + static_cast<unsigned>(beyond);
			first_of_chunk = doubling_end + (beyond << c);
		}
		const std::uint64_t offset = header_->chunks[k].load(std::memory_order_acquire);
		return arena_.base() + offset + (i - first_of_chunk) * header_->stride;
	}

	template <typename T>
	T *at_as(std::uint64_t i) const noexcept
	{
		return reinterpret_cast<T *>(at(i));
	}

	// Makes elements [0, n) addressable. False when the arena is exhausted;
	// chunks allocated before the failure stay and count towards capacity().
	bool ensure_capacity(std::uint64_t n) noexcept
	{
		if (n == 0)
			return true;
		for (unsigned k = 0; k < k_segment_slots; ++k) {
			if (header_->chunks[k].load(std::memory_order_acquire) == 0) {
				const std::size_t bytes = chunk_bytes(k);
				const std::uint64_t offset = arena_.allocate(bytes);
				if (offset == 0)
					return false;
				std::uint64_t expected = 0;
				if (!header_->chunks[k].compare_exchange_strong(expected, offset, std::memory_order_acq_rel))
					arena_.release(offset, bytes);
			}
			if (capacity_of_first(k) >= n)
				return true;
		}
		return false;
	}

	// Elements addressable without further allocation.
	std::uint64_t capacity() const noexcept
	{
		unsigned k = 0;
		while (k < k_segment_slots && header_->chunks[k].load(std::memory_order_acquire) != 0)
			++k;
		return k == 0 ? 0 : capacity_of_first(k - 1);
	}

	std::size_t allocated_bytes() const noexcept
	{
		std::size_t total = 0;
		for (unsigned k = 0; k < k_segment_slots; ++k)
			if (header_->chunks[k].load(std::memory_order_acquire) != 0)
				total += Arena::rounded(chunk_bytes(k));
		return total;
	}

	// Returns every chunk to the arena; no reader may still use the array.
	void release_all() noexcept
	{
		for (unsigned k = 0; k < k_segment_slots; ++k) {
			const std::uint64_t offset = header_->chunks[k].exchange(0, std::memory_order_acq_rel);
			if (offset != 0)
				arena_.release(offset, chunk_bytes(k));
		}
	}

	std::uint32_t stride() const noexcept { return header_->stride; }

private:
	// Chunks that double in size, and the elements they hold together.
	unsigned doubling_chunks() const noexcept { return header_->max_chunk_log2 - header_->first_chunk_log2 + 1; }
	std::uint64_t doubling_capacity() const noexcept
	{
		return ((std::uint64_t{1} << doubling_chunks()) - 1) << header_->first_chunk_log2;
	}
	// Elements held by chunks 0..k together.
	std::uint64_t capacity_of_first(unsigned k) const noexcept
	{
		const unsigned d = doubling_chunks();
		if (k < d)
			return ((std::uint64_t{1} << (k + 1)) - 1) << header_->first_chunk_log2;
		return doubling_capacity() + (std::uint64_t{k - d + 1} << header_->max_chunk_log2);
	}
	std::size_t chunk_bytes(unsigned k) const noexcept
	{
		const unsigned log2 = std::min(header_->first_chunk_log2 + k, header_->max_chunk_log2);
		return (std::size_t{1} << log2) * header_->stride;
	}

	Arena arena_;
	SegmentedArrayHeader *header_;
};

} // namespace engram::core
