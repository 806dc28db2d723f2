// Parallel linking of one batch with oneTBB, for tests, benchmarks and tools
// that build a whole graph at once (the extension links through LinkPool and
// is not linked with this file).
//
// A batch is appended first (one short critical section, see append_batch)
// and then linked by every thread of the caller's current tbb::task_arena,
// each with its own SearchContext from an HnswContextPool. Linking different
// nodes concurrently is safe by the graph's list protocol, so the batch needs
// no coordination beyond the loop itself. Size the thread count with
// tbb::task_arena(n).execute(...) around these calls.
//
// Cancellation: link_range() checks an optional flag between nodes, so a
// caller can stop a batch quickly (for example on shutdown). Nodes left
// unlinked stay searchable through snapshot_search's exact tail and can be
// linked later by calling link_range() again over the same ids: nodes that
// were already claimed are skipped.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include "core/hnsw_context_pool.hpp"
#include "core/hnsw_graph.hpp"

namespace engram::core {

// Links the stored nodes [from, to) in parallel; returns how many this call linked.
std::uint32_t link_range(HnswGraph &graph, std::uint32_t from, std::uint32_t to, HnswContextPool &pool,
						 const std::atomic<bool> *cancel = nullptr);

// Appends vectors (generations.size() of them, end to end) and links them in
// parallel. first, if given, receives the first node id.
HnswStatus insert_batch(HnswGraph &graph, std::span<const float> vectors, std::span<const std::uint64_t> generations,
						HnswContextPool &pool, std::uint32_t *first = nullptr,
						const std::atomic<bool> *cancel = nullptr);

} // namespace engram::core
