// VisitedSet: which node ids one search has already seen, without clearing.
//
// Each slot holds the epoch at which its node was last visited; a search
// starts a new epoch instead of clearing the array, so starting a search is
// O(1) and the membership test is one load and one compare. The array is
// wiped only when the 16-bit epoch wraps (every 65,535 searches). Two bytes
// per node keep the array small enough to stay cache-friendly: one million
// nodes cost 2 MB per thread.
//
// A VisitedSet belongs to one thread's SearchContext; nothing is shared. It
// allocates only when the graph has grown past the size it was prepared for.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/no_postgres.hpp"

namespace engram::core {

class VisitedSet {
public:
	// Starts a new search over ids below `nodes`.
	void begin(std::uint64_t nodes)
	{
		if (slots_.size() < nodes)
			slots_.resize(std::max<std::uint64_t>(nodes, slots_.size() * 2));
		if (++epoch_ == 0) {
			std::fill(slots_.begin(), slots_.end(), std::uint16_t{0});
			epoch_ = 1;
		}
	}

	// Grows the array ahead of time so begin() does not allocate.
	void reserve(std::uint64_t nodes)
	{
		if (slots_.size() < nodes)
			slots_.resize(nodes);
	}

	// True the first time `id` is seen in this search. The caller guarantees
	// id < the `nodes` given to begin().
	bool insert(std::uint32_t id) noexcept
	{
		std::uint16_t &slot = slots_[id];
		if (slot == epoch_)
			return false;
		slot = epoch_;
		return true;
	}

	bool contains(std::uint32_t id) const noexcept { return slots_[id] == epoch_; }

	void prefetch(std::uint32_t id) const noexcept { __builtin_prefetch(slots_.data() + id, 1, 3); }

	std::size_t memory_bytes() const noexcept { return slots_.capacity() * sizeof(std::uint16_t); }

private:
	std::vector<std::uint16_t> slots_;
	std::uint16_t epoch_ = 0;
};

} // namespace engram::core
