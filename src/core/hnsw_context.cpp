// Sizing of SearchContext buffers. Buffers that depend on the graph's shape
// (list capacity, dimension) are fitted on every use, which costs a few
// compares once they are large enough; the visited set follows the graph's
// size and grows by doubling.
#include "core/hnsw_context.hpp"

namespace engram::core {

void
SearchContext::fit(const HnswGraph &graph)
{
	const std::size_t m0 = graph.m0();
	if (links_.size() < m0)
		links_.resize(m0);
	if (query_.size() < graph.dim()) {
		query_.resize(graph.dim());
		node_vector_.resize(graph.dim());
		scratch_.resize(graph.dim());
	}
	merged_.reserve(2 * m0 + 1);
	selected_.reserve(2 * m0 + 1);
	pruning_.reserve(2 * m0 + 1);
	kept_.reserve(2 * m0 + 1);
	discarded_.reserve(2 * m0 + 1);
}

void
SearchContext::reserve(const HnswGraph &graph, std::uint32_t ef, std::uint64_t more_nodes)
{
	fit(graph);
	const std::size_t beam = std::max<std::size_t>({ef, graph.ef_construction(), 1});
	visited_.reserve(graph.size() + more_nodes);
	candidates_.reserve(2 * beam + graph.m0());
	results_.reserve(beam + 1);
	out_.reserve(beam + 1);
	graph_out_.reserve(beam + 1);
}

std::size_t
SearchContext::memory_bytes() const noexcept
{
	const auto bytes = [](const auto &v) { return v.capacity() * sizeof(v[0]); };
	return visited_.memory_bytes() + bytes(candidates_) + bytes(results_) + bytes(out_) + bytes(graph_out_) +
		   bytes(links_) + bytes(merged_) + bytes(selected_) + bytes(pruning_) + bytes(kept_) + bytes(discarded_) +
		   bytes(query_) + bytes(node_vector_) + bytes(scratch_);
}

} // namespace engram::core
