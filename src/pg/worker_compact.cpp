// Compaction of forgotten nodes (see worker_compact.hpp).
//
// Why under the consumer token: the copy must see a graph nothing appends
// to or forgets in, and appends and forgets happen only in the drain, under
// the token; links are frozen by the core for the length of the copy, and
// recalls go on reading the old graph. The copy then takes the old graph's
// place in the space's IndexSlot like a finished rebuild, and the old graph
// is destroyed once its pins drain: the arena overwrites every byte it frees,
// so the forgotten vectors are gone from shared memory. The graph file still
// holds them, so the writer is told to rewrite it at once (erase_requested).
//
// Horizon. Nodes forgotten at or before the published generation are
// removed: every such forget is committed and stored. Snapshots (as_of)
// that could have seen a removed node, from the oldest generation among the
// removed to the newest forget among them, are refused from then on: the
// space's snapshot gap widens over them before the copy becomes current, and
// recall reads the gap after pinning the graph it answers from.
#include "pg/worker_compact.hpp"

#include <algorithm>
#include <limits>

#include "core/hnsw_compact.hpp"
#include "core/hnsw_graph.hpp"
#include "pg/directory.hpp"
#include "pg/guc.hpp"
#include "pg/metrics.hpp"
#include "pg/progress.hpp"
#include "pg/shared.hpp"
#include "pg/worker_store.hpp"

#include "pg/postgres.hpp"

namespace {

// The generations a compaction at `horizon` makes unanswerable: [oldest
// generation, newest forget) over the nodes it removes; empty when none.
struct Erased {
	std::uint64_t from = std::numeric_limits<std::uint64_t>::max();
	std::uint64_t to = 0;
	std::uint64_t nodes = 0;
};

Erased
erased_by(const engram::core::HnswGraph &graph, std::uint64_t horizon)
{
	Erased e;
	const auto n = static_cast<std::uint32_t>(graph.size());
	for (std::uint32_t id = 0; id < n; ++id) {
		const std::uint64_t forgotten = graph.forgotten(id);
		if (forgotten > horizon)
			continue;
		e.from = std::min(e.from, graph.generation(id));
		e.to = std::max(e.to, forgotten);
		e.nodes++;
	}
	return e;
}

bool
due(const SpaceSlot &slot, TimestampTz now)
{
	const TimestampTz since = slot.forgotten_since.load(std::memory_order_acquire);
	return since != 0 && TimestampDifferenceExceeds(since, now, engram_erase_within_ms / 2);
}

void
compact_space(SpaceSlot &slot, std::uint64_t horizon)
{
	engram::core::IndexSlot &index = directory_index(&slot);
	const unsigned current = index.current.load(std::memory_order_acquire);
	const std::uint64_t offset = index.graphs[current].load(std::memory_order_acquire);
	if (offset == 0 || index.graphs[1 - current].load(std::memory_order_acquire) != 0)
		return;
	// Graphs are destroyed only by the token holder: no pin is needed.
	const engram::core::HnswGraph graph(shared_arena(), offset);
	const Erased erased = erased_by(graph, horizon);
	if (erased.nodes == 0) {
		// Forgets newer than the horizon wait for the next round.
		if (graph.forgotten_count() == 0)
			slot.forgotten_since.store(0, std::memory_order_release);
		return;
	}
	std::uint64_t copy = 0;
	engram::core::CompactionStats stats;
	progress_begin(PROGRESS_COMPACTION, slot.space_id, PHASE_COPYING, graph.size() - erased.nodes);
	const engram::core::HnswStatus status =
		engram::core::compact(graph, horizon, copy, &stats, progress_rows_counter());
	progress_end();
	if (status != engram::core::HnswStatus::ok) {
		// Tried again after engram.erase_within / 2 (memory may be freed by
		// then), not at every drain.
		slot.forgotten_since.store(GetCurrentTimestamp(), std::memory_order_release);
		ereport(WARNING,
				(errmsg("engram could not compact space \"%s\": %s", slot.name, engram::core::to_string(status)),
				 errdetail("%llu forgotten observations stay in its index until a compaction succeeds; "
						   "recall does not return them.",
						   static_cast<unsigned long long>(erased.nodes)),
				 errhint("A compaction needs room for a copy of the index in engram.memory_limit.")));
		return;
	}
	directory_widen_snapshot_gap(&slot, erased.from, erased.to);
	const bool more = stats.kept > 0 && engram::core::HnswGraph(shared_arena(), copy).forgotten_count() > 0;
	engram::core::install(index, 1 - current, copy);
	directory_owe(&slot, DUTY_LINK); // the copy keeps the unlinked tail
	engram::core::make_current(index, 1 - current);
	// The copy took over the commit stamps of unlinked rows; those its linked
	// prefix already passes are settled now, not at its next link.
	engram::core::HnswGraph(shared_arena(), copy).settle_link_stamps(metrics_linked_latency());
	directory_destroy_graph(index, current);
	slot.forgotten_since.store(more ? GetCurrentTimestamp() : 0, std::memory_order_release);
	slot.file.erase_requested.fetch_add(1, std::memory_order_acq_rel);
	shared_wake_writer();
	ereport(DEBUG1, (errmsg("engram compacted space \"%s\": %llu observations erased, %llu kept, %zu bytes "
							"before, %zu after",
							slot.name, static_cast<unsigned long long>(stats.removed),
							static_cast<unsigned long long>(stats.kept), stats.bytes_before, stats.bytes_after)));
}

} // namespace

void
compact_spaces(void)
{
	// A load or a rebuild catching up with the ring reads graphs by the filter's rules.
	if (load_filter.active)
		return;
	const TimestampTz now = GetCurrentTimestamp();
	const std::uint64_t horizon = shared_ring().published_generation();
	auto visit = [now, horizon](SpaceSlot &slot) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE ||
			slot.health.load(std::memory_order_acquire) != SPACE_READY ||
			slot.rebuild_requested.load(std::memory_order_acquire) != 0 || !due(slot, now))
			return;
		compact_space(slot, horizon);
		CHECK_FOR_INTERRUPTS();
	};
	auto owed = [](const SpaceSlot &slot) {
		return slot.state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE &&
			   slot.forgotten_since.load(std::memory_order_acquire) != 0;
	};
	directory_visit_owing(DUTY_COMPACT, visit, owed);
}
