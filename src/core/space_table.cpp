#include "core/space_table.hpp"

#include <algorithm>
#include <bit>

namespace engram::core {

std::size_t
SpaceTable::buckets_for(std::size_t entries) noexcept
{
	return std::bit_ceil(std::max<std::size_t>(2 * entries, 4));
}

void
SpaceTable::clear(std::span<SpaceTableBucket> buckets) noexcept
{
	for (SpaceTableBucket &b : buckets)
		b = SpaceTableBucket{0, 0};
}

SpaceTable::SpaceTable(std::span<SpaceTableBucket> buckets) noexcept
	: buckets_(buckets), mask_(buckets.size() - 1), shift_(64 - static_cast<unsigned>(std::countr_zero(buckets.size())))
{
}

std::size_t
SpaceTable::home(std::int32_t key) const noexcept
{
	// Fibonacci hashing: space ids are small consecutive numbers, and the
	// multiplication spreads them over the high bits.
	return static_cast<std::size_t>(
		(static_cast<std::uint64_t>(static_cast<std::uint32_t>(key)) * 0x9E3779B97F4A7C15ULL) >> shift_);
}

std::int32_t
SpaceTable::find(std::int32_t key) const noexcept
{
	for (std::size_t i = home(key), probes = 0; probes <= mask_; i = (i + 1) & mask_, ++probes) {
		const SpaceTableBucket &b = buckets_[i];
		if (b.value == 0)
			return 0;
		if (b.key == key)
			return b.value;
	}
	return 0;
}

bool
SpaceTable::insert(std::int32_t key, std::int32_t value) noexcept
{
	for (std::size_t i = home(key), probes = 0; probes <= mask_; i = (i + 1) & mask_, ++probes) {
		SpaceTableBucket &b = buckets_[i];
		if (b.value == 0) {
			b = SpaceTableBucket{key, value};
			return true;
		}
		if (b.key == key)
			return false;
	}
	return false;
}

bool
SpaceTable::erase(std::int32_t key) noexcept
{
	std::size_t hole = home(key);
	for (std::size_t probes = 0;; hole = (hole + 1) & mask_, ++probes) {
		if (probes > mask_ || buckets_[hole].value == 0)
			return false;
		if (buckets_[hole].key == key)
			break;
	}
	// Backward shift: move later entries of the run into the hole when their
	// home does not lie cyclically in (hole, their position], so every entry
	// stays reachable from its home without tombstones.
	// A full table has no empty bucket to end the run: stop after the others.
	for (std::size_t next = (hole + 1) & mask_, probes = 0; probes < mask_; next = (next + 1) & mask_, ++probes) {
		SpaceTableBucket &b = buckets_[next];
		if (b.value == 0)
			break;
		const std::size_t h = home(b.key);
		const bool stays = hole <= next ? (hole < h && h <= next) : (hole < h || h <= next);
		if (stays)
			continue;
		buckets_[hole] = b;
		hole = next;
	}
	buckets_[hole] = SpaceTableBucket{0, 0};
	return true;
}

} // namespace engram::core
