// The link gate of a graph (protocol at the top of hnsw_graph.hpp): how a
// file writer stops every linker of every process for a moment without
// stopping appends or searches, and without a lock either side could stall on.
//
// Every operation on the two counters is sequentially consistent: a turn
// raises link_turns and then reads link_freezes, a freeze raises link_freezes
// and then reads link_turns, and in the single total order of those four
// operations one of the reads comes after the other side's increment. The
// freezer's final read of link_turns (0) reads from the release sequence of
// every ended turn's decrement, so the lists those turns wrote are visible to
// it.
#include <chrono>
#include <thread>

#include "core/hnsw_graph.hpp"

namespace engram::core {

namespace {

// A turn lasts the links of one claim (a few nodes), so a short sleep wastes
// little of the freezer's time and none of the linkers'.
constexpr std::chrono::microseconds k_freeze_poll{100};

} // namespace

bool
HnswGraph::begin_link_turn() noexcept
{
	header_->link_turns.fetch_add(1, std::memory_order_seq_cst);
	if (header_->link_freezes.load(std::memory_order_seq_cst) == 0)
		return true;
	header_->link_turns.fetch_sub(1, std::memory_order_seq_cst);
	return false;
}

void
HnswGraph::end_link_turn() noexcept
{
	header_->link_turns.fetch_sub(1, std::memory_order_seq_cst);
}

void
HnswGraph::freeze_links() const noexcept
{
	header_->link_freezes.fetch_add(1, std::memory_order_seq_cst);
	while (header_->link_turns.load(std::memory_order_seq_cst) != 0)
		std::this_thread::sleep_for(k_freeze_poll);
}

void
HnswGraph::thaw_links() const noexcept
{
	header_->link_freezes.fetch_sub(1, std::memory_order_seq_cst);
}

} // namespace engram::core
