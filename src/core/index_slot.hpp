// IndexSlot: where the graphs of one space are found in shared memory, and
// the pins that keep a graph alive while anyone uses it.
//
// A space has up to two graphs: the one recalls use (`current`) and, while a
// rebuild runs, its replacement. Each is named by its header offset in the
// arena (0 = none). Any thread of any process that wants to read or link a
// graph first pins it: it raises the graph's pin count, then re-reads the
// offset; only a non-zero offset read after the pin is safe to use, until the
// pin is dropped. Whoever removes a graph first swaps its offset to 0, then
// waits for the pin count to reach zero before destroying it. Both sides use
// sequentially consistent operations on the count and the offset, so either
// the remover sees the pin or the pinner sees the 0: never neither. Readers
// take no lock, and a stalled reader delays only the freeing of memory.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "core/no_postgres.hpp"

namespace engram::core {

struct IndexSlot {
	std::atomic<std::uint32_t> current; // which of graphs[] recalls use
	std::atomic<std::uint32_t> unused;
	std::atomic<std::uint64_t> graphs[2]; // graph header offsets in the arena, 0 = none
	std::atomic<std::uint64_t> pins[2];   // users of graphs[i]
};
static_assert(std::is_standard_layout_v<IndexSlot>);

// A pinned graph: its offset stays valid until the pin is dropped.
class GraphPin {
public:
	GraphPin() noexcept = default;
	// Pins graphs[which]; empty if that graph does not exist.
	GraphPin(IndexSlot &slot, unsigned which) noexcept;
	GraphPin(GraphPin &&other) noexcept;
	GraphPin &operator=(GraphPin &&other) noexcept;
	GraphPin(const GraphPin &) = delete;
	GraphPin &operator=(const GraphPin &) = delete;
	~GraphPin() { release(); }

	explicit operator bool() const noexcept { return slot_ != nullptr; }
	std::uint64_t offset() const noexcept { return offset_; }
	unsigned which() const noexcept { return which_; }
	void release() noexcept;

private:
	IndexSlot *slot_ = nullptr;
	unsigned which_ = 0;
	std::uint64_t offset_ = 0;
};

// Pins the graph recalls use now; empty if the space has none.
GraphPin pin_current(IndexSlot &slot) noexcept;

// --- one writer per slot at a time (the caller serialises) -----------------

// Empties a slot whose graphs were all retired and drained (or a zeroed one).
void reset(IndexSlot &slot) noexcept;
// Publishes a graph in the empty place `which`.
void install(IndexSlot &slot, unsigned which, std::uint64_t offset) noexcept;
// Makes graphs[which] the one recalls use.
void make_current(IndexSlot &slot, unsigned which) noexcept;
// Unpublishes graphs[which] and returns its offset (0 if none): new pins now
// fail; destroy the graph once drained() says the old ones are gone.
std::uint64_t retire(IndexSlot &slot, unsigned which) noexcept;
bool drained(const IndexSlot &slot, unsigned which) noexcept;

} // namespace engram::core
