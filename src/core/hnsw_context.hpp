// SearchContext: everything one thread needs to search or link, owned by
// that thread and reused call after call.
//
// Why: a search must not allocate or share mutable state, so each thread
// keeps its own visited set (epoch-stamped, see visited_set.hpp), beam (or
// candidate and result heaps for filtered searches), list and vector scratch
// buffers. reserve() sizes them
// for a graph and a beam width; afterwards a search allocates only if the
// graph has grown past the reserved node count or a larger ef is asked for.
// Levels of new nodes come from a hash of the node id (HnswGraph), so the
// context needs no random generator and no two threads ever share one.
//
// A context may be used with different graphs in turn, never by two threads
// at once. Results returned by a search point into the context and stay
// valid until its next use.
#pragma once

#include <cstdint>
#include <vector>

#include "core/hnsw_graph.hpp"
#include "core/visited_set.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

class SearchContext {
public:
	SearchContext() = default;

	// Sizes every buffer for `graph` (its current size plus `more_nodes`) and beam width `ef`.
	void reserve(const HnswGraph &graph, std::uint32_t ef, std::uint64_t more_nodes = 0);

	std::size_t memory_bytes() const noexcept;

private:
	friend class HnswGraph;

	// Grows the buffers that depend on the graph's shape (not on its size).
	void fit(const HnswGraph &graph);

	VisitedSet visited_;
	std::vector<Neighbor> candidates_;  // filtered search: min-heap of nodes still to expand
	std::vector<Neighbor> results_;     // the sorted beam, or the filtered search's max-heap of results
	std::vector<Neighbor> out_;         // what a search returns
	std::vector<Neighbor> graph_out_;   // snapshot_search: the graph part while the exact part runs
	std::vector<std::uint32_t> links_;  // one list copy
	std::vector<std::uint32_t> merged_; // a list plus ids being added to it
	std::vector<Neighbor> selected_;    // neighbours chosen for a node being linked
	std::vector<Neighbor> pruning_;     // candidates while pruning an overfull list
	std::vector<Neighbor> kept_;        // the pruned list
	std::vector<Neighbor> discarded_;   // heuristic rejects, used to fill spare slots
	std::vector<float> query_;          // normalised query, or the vector being linked
	std::vector<float> node_vector_;    // vector of a node whose list is pruned
	std::vector<float> scratch_;        // one decoded candidate
};

} // namespace engram::core
