// SpaceTable: finds a space's slot from its id in O(1), over buckets that
// live wherever the caller puts them (shared memory in the extension).
//
// The space directory holds up to engram.max_spaces spaces, and every recall
// and every ring record looks one up: a linear scan of ten thousand slots
// would cost more than the search it serves. This is an open-addressing table
// with linear probing, sized to at least twice the entries it may hold, and
// deletion by backward shift, so no tombstones accumulate however many spaces
// are created and dropped. Keys are any int32; values are non-zero int32
// (the caller encodes what they mean; 0 marks an empty bucket).
//
// Plain data, no atomics: the caller serialises writers against readers
// (the directory's LWLock: shared to find, exclusive to change).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/no_postgres.hpp"

namespace engram::core {

struct SpaceTableBucket {
	std::int32_t key;
	std::int32_t value; // 0: empty
};

class SpaceTable {
public:
	// Buckets for a table of up to `entries` entries: a power of two, at least
	// twice as many, so probes stay short.
	static std::size_t buckets_for(std::size_t entries) noexcept;
	// Empties buckets (any power-of-two count of at least 2).
	static void clear(std::span<SpaceTableBucket> buckets) noexcept;

	explicit SpaceTable(std::span<SpaceTableBucket> buckets) noexcept;

	// The value stored for key, or 0.
	std::int32_t find(std::int32_t key) const noexcept;
	// Stores key -> value (value != 0); false if the key is present or no
	// bucket is empty.
	bool insert(std::int32_t key, std::int32_t value) noexcept;
	// Removes key; false if absent.
	bool erase(std::int32_t key) noexcept;

private:
	std::size_t home(std::int32_t key) const noexcept;

	std::span<SpaceTableBucket> buckets_;
	std::size_t mask_;
	unsigned shift_;
};

} // namespace engram::core
