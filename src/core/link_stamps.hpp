// LinkStamps: the commit stamps (commit_stamp.hpp) of a graph's rows that
// are stored but not yet linked, kept until their links finish, so engram
// can tell how long an observation took from its commit until recall finds
// it through the graph (engram_streaming_observation_latency_seconds).
//
// Links finish out of order: any number of threads claim ids and finish
// them as they can. But the graph's linked_prefix (every id below it is
// linked) only moves forward, so it settles batches in the order they were
// stored: a batch of `rows` rows ending at id `end` is done once
// linked_prefix >= end, and its rows then count as having waited from their
// stamp to that moment. A row linked early waits for the rows before it;
// the measure is the time until the batch and everything stored before it
// is in the graph, which exceeds the true time by at most the slowest of the
// links running at once.
//
// Memory is fixed: k_link_stamp_entries entries of 12 bytes in the graph's
// header, whatever the backlog. When they are all taken, the two
// neighbouring batches whose stamps are nearest (the chunks of one large
// transaction share a stamp) become one: rows added, stamp their
// row-weighted mean, settled when the later one is. Counts stay exact, the
// sum of the waits nearly so, and only the times of batches committed close
// together blur.
//
// Concurrency. One thread at a time pushes (the caller serialises: engram
// appends only under the ring's consumer token); any thread of any process
// settles. Both hold the structure's short spin lock; `pending` says without
// it whether there is anything to settle. Whoever moves either side settles
// after its move: the pusher (its rows may be linked already) and every
// linker after its links. Every write of `pending` is a read-modify-write,
// and HnswGraph::settle_link_stamps starts with one (link_stamps_waiting)
// before it reads the linked prefix, so of a push and a link that passes
// it, the later of the two to reach `pending` synchronises with the other
// and sees its move: no batch stays behind once its rows are linked. (A
// fence would do the same, but ThreadSanitizer does not model fences.)
//
// Lifetime. The entries live in the graph's header, so a graph destroyed
// (a drop, a quarantine, the old graph of a rebuild) takes its unsettled
// batches with it and they are never counted; a compaction moves them into
// its copy with the ids renumbered (move_link_stamps).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include "core/commit_stamp.hpp"
#include "core/latency_histogram.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

inline constexpr std::uint32_t k_link_stamp_entries = 16;

struct LinkStampEntry {
	std::uint32_t end;   // the batch is ids [end - rows, end)
	std::uint32_t rows;  // rows it counts (fewer than end - begin once merged or compacted)
	std::uint32_t stamp; // commit stamp of its rows
};

struct LinkStamps {
	std::atomic<std::uint32_t> lock;
	std::atomic<std::uint32_t> pending; // entries held; changed only by read-modify-writes, under the lock
	std::uint32_t head;                 // the oldest entry, under the lock
	std::uint32_t unused;
	LinkStampEntry entries[k_link_stamp_entries]; // a circle from head, under the lock
};
static_assert(std::is_standard_layout_v<LinkStamps>);

// Records that rows [end - rows, end) were stored with `stamp` (not 0).
void push_link_stamp(LinkStamps &stamps, std::uint32_t end, std::uint32_t rows, std::uint32_t stamp) noexcept;

// Takes every batch that ends at or below linked_prefix and records its rows
// in `latency` (if not null) as having waited until clock(); returns the
// rows it settled. The clock is read only if something is settled.
std::uint64_t settle_link_stamps(LinkStamps &stamps, std::uint64_t linked_prefix, LatencyHistogram *latency,
								 std::uint32_t (*clock)() noexcept = commit_stamp_now) noexcept;

// Moves every batch of `from` into the empty `to`, renumbered for a copy
// that kept the ids `kept` (ascending) of the old graph as 0, 1, 2, ...:
// each counts only its rows that were kept, and one left with none is
// dropped. `from` is left empty.
void move_link_stamps(LinkStamps &from, LinkStamps &to, std::span<const std::uint32_t> kept) noexcept;

// Whether anything waits to be settled, read with a read-modify-write of
// `pending`: the first step of settling after one's own move (see above).
bool link_stamps_waiting(LinkStamps &stamps) noexcept;

// Whether no batch ending at or below `end` waits to be settled (those past
// it may).
bool link_stamps_settled_to(LinkStamps &stamps, std::uint64_t end) noexcept;

inline bool
has_pending_link_stamps(const LinkStamps &stamps) noexcept
{
	return stamps.pending.load(std::memory_order_relaxed) != 0;
}

} // namespace engram::core
