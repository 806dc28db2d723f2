#include "core/index_slot.hpp"

#include <utility>

namespace engram::core {

GraphPin::GraphPin(IndexSlot &slot, unsigned which) noexcept
{
	slot.pins[which].fetch_add(1, std::memory_order_seq_cst);
	const std::uint64_t offset = slot.graphs[which].load(std::memory_order_seq_cst);
	if (offset == 0) {
		slot.pins[which].fetch_sub(1, std::memory_order_release);
		return;
	}
	slot_ = &slot;
	which_ = which;
	offset_ = offset;
}

GraphPin::GraphPin(GraphPin &&other) noexcept
	: slot_(std::exchange(other.slot_, nullptr)), which_(other.which_), offset_(std::exchange(other.offset_, 0))
{
}

GraphPin &
GraphPin::operator=(GraphPin &&other) noexcept
{
	if (this != &other) {
		release();
		slot_ = std::exchange(other.slot_, nullptr);
		which_ = other.which_;
		offset_ = std::exchange(other.offset_, 0);
	}
	return *this;
}

void
GraphPin::release() noexcept
{
	if (slot_ == nullptr)
		return;
	// Release: every read of the graph happens before the remover sees the count drop.
	slot_->pins[which_].fetch_sub(1, std::memory_order_release);
	slot_ = nullptr;
	offset_ = 0;
}

GraphPin
pin_current(IndexSlot &slot) noexcept
{
	for (;;) {
		const unsigned which = slot.current.load(std::memory_order_acquire);
		GraphPin pin(slot, which);
		if (pin || slot.current.load(std::memory_order_acquire) == which)
			return pin;
	}
}

void
reset(IndexSlot &slot) noexcept
{
	// The pin counts are left alone: they are zero whenever no pin is held,
	// and a pinner that is just backing out of a failed pin would otherwise
	// decrement a count that was reset under it.
	slot.current.store(0, std::memory_order_release);
	for (unsigned i = 0; i < 2; ++i)
		slot.graphs[i].store(0, std::memory_order_seq_cst);
}

void
install(IndexSlot &slot, unsigned which, std::uint64_t offset) noexcept
{
	slot.graphs[which].store(offset, std::memory_order_seq_cst);
}

void
make_current(IndexSlot &slot, unsigned which) noexcept
{
	slot.current.store(which, std::memory_order_release);
}

std::uint64_t
retire(IndexSlot &slot, unsigned which) noexcept
{
	return slot.graphs[which].exchange(0, std::memory_order_seq_cst);
}

bool
drained(const IndexSlot &slot, unsigned which) noexcept
{
	// Sequentially consistent with the pinners' increment (see the header);
	// it also acquires the releases of GraphPin::release().
	return slot.pins[which].load(std::memory_order_seq_cst) == 0;
}

} // namespace engram::core
