// Settling a graph's commit stamps against its linked prefix (see
// link_stamps.hpp and HnswGraph::settle_link_stamps).
#include "core/hnsw_graph.hpp"

namespace engram::core {

std::uint64_t
HnswGraph::settle_link_stamps(LatencyHistogram *latency) noexcept
{
	// After the caller's own move (a push, or a link that moved the prefix)
	// and before reading the prefix: of a push and a link that passes it,
	// one sees the other (link_stamps.hpp).
	if (!link_stamps_waiting(header_->link_stamps))
		return 0;
	return engram::core::settle_link_stamps(header_->link_stamps, linked_prefix(), latency);
}

} // namespace engram::core
