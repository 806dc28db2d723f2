// The label table: which node carries a label, so that a caller that knows
// only its own name for a node (engram: the observation id) can forget it.
//
// Open addressing with linear probing over one arena block of LabelSlots,
// kept at most half full so that probes stay short, and replaced by a block
// twice the size (every slot re-placed by its stored hash bits, without
// reading node heads) when it would pass that. A label maps to the newest
// node appended with it: an update re-appends the label and takes over its
// slot. Every read and write happens under the graph's append lock, which
// appends hold anyway, so the table needs no protocol of its own and a
// replaced block can be freed at once. reserve() and append make room before
// they write any node, so an append never fails half-way for want of a slot.
#include <algorithm>
#include <bit>
#include <new>

#include "core/hnsw_graph.hpp"

namespace engram::core {

namespace {

constexpr std::uint64_t k_min_label_slots = 64;

std::uint32_t
label_hash(std::int64_t label) noexcept
{
	auto x = static_cast<std::uint64_t>(label);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return static_cast<std::uint32_t>(x ^ (x >> 31));
}

} // namespace

bool
HnswGraph::reserve_labels(std::uint64_t more) noexcept
{
	HnswHeader &h = *header_;
	const std::uint64_t capacity = h.label_capacity.load(std::memory_order_relaxed);
	const std::uint64_t used = h.label_used.load(std::memory_order_relaxed);
	if (2 * (used + more) <= capacity)
		return true;
	// Slot positions come from 32 hash bits, so the table stops at 2^32 slots
	// (twice k_max_nodes, which no graph passes).
	const std::uint64_t grown = std::max(k_min_label_slots, std::bit_ceil(2 * (used + more)));
	if (grown > (std::uint64_t{1} << 32))
		return false;
	const std::uint64_t offset = arena_.allocate(grown * sizeof(LabelSlot));
	if (offset == 0)
		return false;
	auto *slots = arena_.at<LabelSlot>(offset);
	for (std::uint64_t i = 0; i < grown; ++i)
		new (slots + i) LabelSlot{0, k_no_node};
	const std::uint64_t old_offset = h.labels.load(std::memory_order_relaxed);
	if (old_offset != 0) {
		const auto *old = arena_.at<const LabelSlot>(old_offset);
		for (std::uint64_t i = 0; i < capacity; ++i) {
			if (old[i].node == k_no_node)
				continue;
			std::uint64_t at = old[i].hash & (grown - 1);
			while (slots[at].node != k_no_node)
				at = (at + 1) & (grown - 1);
			slots[at] = old[i];
		}
		arena_.release(old_offset, capacity * sizeof(LabelSlot));
	}
	h.labels.store(offset, std::memory_order_relaxed);
	h.label_capacity.store(grown, std::memory_order_relaxed);
	return true;
}

void
HnswGraph::index_label(std::int64_t label, std::uint32_t node) noexcept
{
	HnswHeader &h = *header_;
	const std::uint64_t mask = h.label_capacity.load(std::memory_order_relaxed) - 1;
	auto *slots = arena_.at<LabelSlot>(h.labels.load(std::memory_order_relaxed));
	const std::uint32_t hash = label_hash(label);
	for (std::uint64_t at = hash & mask;; at = (at + 1) & mask) {
		LabelSlot &slot = slots[at];
		if (slot.node == k_no_node) {
			slot = LabelSlot{hash, node};
			h.label_used.store(h.label_used.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
			return;
		}
		if (slot.hash == hash && head(slot.node).label == label) {
			slot.node = node;
			return;
		}
	}
}

std::uint32_t
HnswGraph::lookup_label(std::int64_t label) const noexcept
{
	const HnswHeader &h = *header_;
	const std::uint64_t capacity = h.label_capacity.load(std::memory_order_relaxed);
	if (capacity == 0)
		return k_no_node;
	const auto *slots = arena_.at<const LabelSlot>(h.labels.load(std::memory_order_relaxed));
	const std::uint32_t hash = label_hash(label);
	for (std::uint64_t at = hash & (capacity - 1);; at = (at + 1) & (capacity - 1)) {
		const LabelSlot &slot = slots[at];
		if (slot.node == k_no_node)
			return k_no_node;
		if (slot.hash == hash && head(slot.node).label == label)
			return slot.node;
	}
}

void
HnswGraph::release_labels() noexcept
{
	HnswHeader &h = *header_;
	const std::uint64_t offset = h.labels.exchange(0, std::memory_order_relaxed);
	if (offset != 0)
		arena_.release(offset, h.label_capacity.load(std::memory_order_relaxed) * sizeof(LabelSlot));
	h.label_capacity.store(0, std::memory_order_relaxed);
	h.label_used.store(0, std::memory_order_relaxed);
}

std::optional<std::uint32_t>
HnswGraph::find_label(std::int64_t label) const noexcept
{
	SpinLockGuard append_lock(header_->append_lock);
	const std::uint32_t node = lookup_label(label);
	if (node == k_no_node)
		return std::nullopt;
	return node;
}

} // namespace engram::core
