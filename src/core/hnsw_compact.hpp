// Compaction: a copy of a graph without the nodes forgotten up to a horizon,
// so that their memory goes back to the arena and their vectors can be erased.
//
// Why a copy rather than removal in place: searches run on the graph all the
// time, and a node removed in place would have to be unlinked from every list
// that names it while those lists are read, its id could never be reused
// (lists of other nodes may still hold it), and the memory of a segmented
// array cannot shrink in the middle. A copy is built off to the side from a
// graph that is only read, so searches go on undisturbed, and the caller
// swaps it in like a rebuilt graph (index_slot.hpp: install, make_current,
// retire, destroy once drained). Destroying the old graph then erases every
// byte of it (Arena::release overwrites what it frees).
//
// What the copy holds: every node of the old graph except those forgotten at
// or before the horizon, in id order (ids are renumbered densely), each with
// its encoded vector, data and level as they were, its lists with ids
// renumbered, and its link state. A list that named a removed node is
// repaired: its candidates are its surviving ids plus the surviving
// neighbours (on the same level) of the removed ones, and the graph's own
// pruning heuristic chooses among them. The level-0 spanning tree that keeps
// every node reachable (hnsw_insert.cpp) is kept: a node whose parent was
// removed is adopted by its nearest neighbour that is already in the tree
// and has room. The entry point stays if it survives; otherwise the first
// surviving linked node of the highest level takes its place. Nodes that were
// not linked stay unlinked and unclaimed, so linkers link them in the copy.
//
// The caller guarantees that nothing appends to the old graph while it is
// copied (engram appends and compacts under the same consumer token); links
// are frozen through the link gate for the whole copy, so the caller must
// not hold a link turn of the graph. A node forgotten on the old graph after
// the copy read it is not forgotten in the copy: forgetting must be
// serialised with compaction too, or replayed on the copy.
//
// Errors are values: out_of_memory when the arena (or the process heap) cannot
// hold the copy, which is then destroyed; the old graph is never written.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/hnsw_graph.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

struct CompactionStats {
	std::uint64_t kept = 0;           // nodes copied
	std::uint64_t removed = 0;        // nodes forgotten at or before the horizon, left out
	std::uint64_t repaired_lists = 0; // lists that named a removed node and were chosen again
	std::uint64_t reattached = 0;     // level-0 tree nodes given a new parent (or made the root)
	std::size_t bytes_before = 0;     // memory_bytes() of the old graph
	std::size_t bytes_after = 0;      // memory_bytes() of the copy
};

// Builds the copy of `graph` in its arena; header_offset receives its offset.
// On any status but ok nothing is left allocated and header_offset is untouched.
// nodes_copied (if given) receives, every few thousand nodes (relaxed), how
// many of the nodes kept are copied with their lists, for a progress report.
HnswStatus compact(const HnswGraph &graph, std::uint64_t horizon, std::uint64_t &header_offset,
				   CompactionStats *stats = nullptr, std::atomic<std::uint64_t> *nodes_copied = nullptr) noexcept;

} // namespace engram::core
