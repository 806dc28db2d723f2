// Forgetting: a node hidden from every snapshot at or after a generation.
//
// A forget writes the node's `forgotten` word once, from k_never_forgotten to
// the generation (never earlier than the node's own, so a node forgotten
// "before" it existed is simply never visible), and only then lowers the
// header's lowest_forgotten and raises its forgotten count. A search reads the count
// with acquire before deciding whether it may skip per-node checks (the
// unfiltered fast path, hnsw_search.cpp), so once it sees the count it also
// sees the node's word; a search that began before the forget returned may
// still return the node, as for any operation that overlaps it. The node
// stays in the graph as a bridge for searches until compaction removes it.
#include <algorithm>

#include "core/hnsw_graph.hpp"

namespace engram::core {

ForgetResult
HnswGraph::hide(std::uint32_t id, std::uint64_t generation) noexcept
{
	NodeHead &node = head(id);
	// Not earlier than the node itself, and below k_never_forgotten, which would hide nothing.
	generation = std::min(std::max(generation, node.generation), k_never_forgotten - 1);
	std::uint64_t never = k_never_forgotten;
	if (!node.forgotten.compare_exchange_strong(never, generation, std::memory_order_release,
												std::memory_order_relaxed))
		return ForgetResult::already_forgotten;
	std::uint64_t lowest = header_->lowest_forgotten.load(std::memory_order_relaxed);
	while (generation < lowest &&
		   !header_->lowest_forgotten.compare_exchange_weak(lowest, generation, std::memory_order_relaxed))
		;
	header_->forgotten.fetch_add(1, std::memory_order_release);
	return ForgetResult::forgotten;
}

ForgetResult
HnswGraph::forget(std::int64_t label, std::uint64_t generation) noexcept
{
	const std::optional<std::uint32_t> id = find_label(label);
	return id ? hide(*id, generation) : ForgetResult::not_found;
}

ForgetResult
HnswGraph::forget_node(std::uint32_t id, std::uint64_t generation) noexcept
{
	return id < size() ? hide(id, generation) : ForgetResult::not_found;
}

} // namespace engram::core
