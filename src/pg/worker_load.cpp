// Loads from engram.observations (see worker_load.hpp).
//
// Both loads take an MVCC snapshot S and note the ring's tail T while holding
// the consumer token. Every transaction visible in S reserved its records
// before S was taken, hence before T; so until the head passes T, the drain
// skips (for the loaded graphs) the records whose transaction S saw, and
// stores the rest. The loaded graphs therefore converge to exactly the
// committed rows, none twice. The token holder keeps the token until then,
// because only it knows S.
//
// Faults stay local: a space that does not fit (engram.memory_limit, or
// engram.memory_reserve while it holds the most memory), or whose rows
// cannot be read, is quarantined and loading goes on with the others; a
// space beyond engram.max_spaces gets no slot and is quarantined as well.
// A rebuild of a quarantined space fills its only graph the same way and,
// once that graph is linked, makes the space ready again.
//
// Generations: rows loaded at start-up get the generation the load began at
// (the originals are not kept in the table). A rebuild copies each row's
// generation from the graph it replaces, so snapshots (as_of) mean the same
// before and after; rows that graph does not hold yet get the latest
// generation, which only hides them until their own record is published.
#include "pg/worker_load.hpp"

#include <algorithm>
#include <cstring>

#include "pg/quarantine.hpp"
#include "pg/observation_rows.hpp"
#include "pg/worker_store.hpp"

extern "C" {
#include "utils/hsearch.h"
#include "utils/resowner.h"
}

namespace {

constexpr int k_load_rows = 2000;

struct GenerationEntry {
	std::int64_t label;
	std::uint64_t generation;
};

// observation id -> generation of every node of a graph.
HTAB *
generations_of(const engram::core::HnswGraph &graph)
{
	HASHCTL ctl;
	std::memset(&ctl, 0, sizeof ctl);
	ctl.keysize = sizeof(std::int64_t);
	ctl.entrysize = sizeof(GenerationEntry);
	ctl.hcxt = CurrentMemoryContext;
	const auto n = static_cast<std::uint32_t>(graph.size());
	HTAB *map =
		hash_create("engram rebuild generations", std::max<long>(n, 16), &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (std::uint32_t id = 0; id < n; ++id) {
		const std::int64_t label = graph.label(id);
		auto *entry = static_cast<GenerationEntry *>(hash_search(map, &label, HASH_ENTER, nullptr));
		entry->generation = graph.generation(id);
	}
	return map;
}

// Appends every row of the space visible to the active snapshot to `graph`,
// a graph of `slot`. Stops (having appended a prefix) when the graph cannot
// grow, or has grown into engram.memory_reserve while holding the most memory.
AppendResult
load_rows(const SpaceSlot *slot, engram::core::HnswGraph &graph, std::uint64_t generation, HTAB *generations,
		  std::uint64_t &loaded)
{
	Oid argtype = INT4OID;
	SPIPlanPtr plan = SPI_prepare(
		"SELECT id, embedding, confidence FROM engram.observations WHERE space_id OPERATOR(pg_catalog.=) $1 ORDER BY id",
		1, &argtype);
	Datum arg = Int32GetDatum(slot->space_id);
	Portal portal = SPI_cursor_open(nullptr, plan, &arg, nullptr, true);
	const std::uint32_t dim = graph.dim();
	auto *vectors = static_cast<float *>(palloc(sizeof(float) * dim * k_load_rows));
	auto *rows = static_cast<engram::core::NodeData *>(palloc(sizeof(engram::core::NodeData) * k_load_rows));
	AppendResult result = AppendResult::ok;
	for (;;) {
		SPI_cursor_fetch(portal, true, k_load_rows);
		const auto n = static_cast<std::uint32_t>(SPI_processed);
		if (n == 0)
			break;
		TupleDesc desc = SPI_tuptable->tupdesc;
		for (std::uint32_t i = 0; i < n; ++i) {
			const ObservationRow row =
				copy_observation(SPI_tuptable->vals[i], desc, dim, vectors + std::size_t{i} * dim);
			std::uint64_t g = generation;
			if (generations != nullptr)
				if (auto *e = static_cast<GenerationEntry *>(hash_search(generations, &row.id, HASH_FIND, nullptr)))
					g = e->generation;
			rows[i] = engram::core::NodeData{g, row.id, row.confidence};
		}
		SPI_freetuptable(SPI_tuptable);
		if (graph.reserve(graph.size() + n) != engram::core::HnswStatus::ok) {
			result = AppendResult::no_memory;
			break;
		}
		if (takes_the_reserve(slot)) {
			result = AppendResult::reserve;
			break;
		}
		std::uint32_t first = 0;
		(void) graph.append_batch(std::span<const float>(vectors, std::size_t{n} * dim),
								  std::span<const engram::core::NodeData>(rows, n), first);
		loaded += n;
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	pfree(vectors);
	pfree(rows);
	return result;
}

// load_rows() inside a subtransaction, so that a space whose rows cannot be
// read is quarantined and loading goes on: AppendResult::damaged, with the
// error's message in `error`. A cancel is passed on.
AppendResult
load_rows_guarded(const SpaceSlot *slot, engram::core::HnswGraph &graph, std::uint64_t generation, HTAB *generations,
				  std::uint64_t &loaded, char *error, std::size_t error_size)
{
	AppendResult result = AppendResult::damaged;
	auto load = [&] { result = load_rows(slot, graph, generation, generations, loaded); };
	return run_in_subtransaction(load, error, error_size) ? result : AppendResult::damaged;
}

// Takes the snapshot a load reads with and arms the filter with it.
void
begin_load(std::int32_t space_id, unsigned replacement)
{
	engram::core::Ring ring = shared_ring();
	ensure_transaction();
	Snapshot snapshot = GetTransactionSnapshot();
	PushActiveSnapshot(snapshot);
	filter_from_snapshot(snapshot);
	load_filter.space_id = space_id;
	load_filter.replacement = replacement;
	load_filter.tail_mark = ring.tail_position();
}

void
end_load(void)
{
	PopActiveSnapshot();
	end_transaction();
	load_filter.active = true;
}

bool
in_catalog(const SpaceDefinition *definitions, std::uint64_t count, std::int32_t space_id)
{
	const SpaceDefinition *end = definitions + count;
	const SpaceDefinition *at =
		std::lower_bound(definitions, end, space_id,
						 [](const SpaceDefinition &d, std::int32_t id) { return d.space_id < id; });
	return at != end && at->space_id == space_id;
}

// Every graph goes, since the table is the truth. A slot stays for each space
// the snapshot holds (keeping a drop or a rebuild it was asked for) and for a
// space whose creation the snapshot does not see yet; the others are freed.
void
reset_directory(const SpaceDefinition *definitions, std::uint64_t count)
{
	for (SpaceSlot &slot : directory_slots()) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE)
			continue;
		engram::core::IndexSlot &index = directory_index(&slot);
		directory_destroy_graph(index, 0);
		directory_destroy_graph(index, 1);
		const TransactionId created = slot.create_xid.load(std::memory_order_acquire);
		if (!in_catalog(definitions, count, slot.space_id) &&
			(created == InvalidTransactionId || filter_sees(created))) {
			directory_free(&slot);
			continue;
		}
		LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
		engram::core::reset(index);
		slot.health.store(SPACE_READY, std::memory_order_release);
		slot.cause = QUARANTINE_NONE;
		slot.dropped_observations.store(0, std::memory_order_relaxed);
		if (slot.rebuild_requested.load(std::memory_order_acquire) == 2)
			slot.rebuild_requested.store(1, std::memory_order_release);
		LWLockRelease(shared_directory_lock());
	}
}

} // namespace

void
load_spaces(int worker_index)
{
	engram::core::Ring ring = shared_ring();
	begin_load(-1, 0);
	ring.seed_generation(GetXLogInsertRecPtr());
	const std::uint64_t generation = ring.last_generation();
	progress_reset();

	std::uint64_t spaces = 0;
	SpaceDefinition *definitions = all_spaces(&spaces);
	reset_directory(definitions, spaces);

	// Slots in id order; those that find none are quarantined (directory.hpp).
	std::uint64_t homeless = 0;
	LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
	directory_forget_homeless();
	for (std::uint64_t i = 0; i < spaces; ++i)
		if (directory_install(definitions[i], InvalidTransactionId) == nullptr) {
			directory_mark_homeless(definitions[i].space_id);
			homeless++;
		}
	LWLockRelease(shared_directory_lock());
	if (homeless > 0)
		ereport(WARNING, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						  errmsg("%llu spaces are quarantined: engram.max_spaces is %u and engram.space_catalog "
								 "holds %llu spaces",
								 static_cast<unsigned long long>(homeless), directory_capacity(),
								 static_cast<unsigned long long>(spaces)),
						  errdetail("The spaces from id %d on have no slot in the space directory: their observations "
									"stay in engram.observations but are not indexed, and recalls and commits are "
									"refused. The other spaces are loaded.",
									definitions[spaces - homeless].space_id),
						  errhint("Raise engram.max_spaces and restart the server, or drop unused spaces and run "
								  "engram.rebuild() on the others.")));

	std::uint64_t loaded = 0, quarantined = 0;
	for (std::uint64_t i = 0; i < spaces - homeless; ++i) {
		LWLockAcquire(shared_directory_lock(), LW_SHARED);
		SpaceSlot *slot = directory_find(definitions[i].space_id);
		LWLockRelease(shared_directory_lock());
		if (slot == nullptr || !space_takes_rows(slot)) {
			quarantined++;
			continue;
		}
		engram::core::IndexSlot &index = directory_index(slot);
		engram::core::HnswGraph graph(shared_arena(),
									  index.graphs[index.current.load(std::memory_order_acquire)].load());
		char error[k_cause_text_bytes] = "while loading after a start";
		const AppendResult result = load_rows_guarded(slot, graph, generation, nullptr, loaded, error, sizeof error);
		if (result != AppendResult::ok) {
			quarantine_space(slot, quarantine_cause_of(result), graph.size(), error);
			quarantined++;
		}
	}
	pfree(definitions);
	shared_state()->loaded_generation.store(generation, std::memory_order_release);
	end_load();
	ereport(LOG,
			(errmsg("engram worker %d loaded %llu observations of %llu spaces (%llu quarantined); linking them now",
					worker_index, static_cast<unsigned long long>(loaded), static_cast<unsigned long long>(spaces),
					static_cast<unsigned long long>(quarantined + homeless))));
}

void
start_rebuilds(void)
{
	if (load_filter.active)
		return; // one load at a time: the filter holds one snapshot
	for (SpaceSlot &slot : directory_slots()) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE ||
			slot.rebuild_requested.load(std::memory_order_acquire) != 1)
			continue;
		engram::core::IndexSlot &index = directory_index(&slot);
		const unsigned current = index.current.load(std::memory_order_acquire);
		const unsigned replacement = 1 - current;
		if (index.graphs[replacement].load(std::memory_order_acquire) != 0)
			continue; // already running
		// A quarantined space has no graph: its replacement is all it will have.
		const bool after_quarantine = slot.health.load(std::memory_order_acquire) != SPACE_READY;
		const std::uint64_t old_offset = index.graphs[current].load(std::memory_order_acquire);
		if (!after_quarantine && old_offset == 0) {
			// Nothing stored yet: there is nothing to rebuild.
			slot.rebuild_requested.store(0, std::memory_order_release);
			slot.rebuilds_finished.fetch_add(1, std::memory_order_acq_rel);
			continue;
		}
		engram::core::Arena arena = shared_arena();
		std::uint64_t offset = 0;
		if (engram::core::HnswGraph::create(arena, directory_config(&slot), offset) != engram::core::HnswStatus::ok) {
			if (after_quarantine) {
				quarantine_space(&slot, QUARANTINE_MEMORY_LIMIT, 0, "while rebuilding");
				continue;
			}
			abandon_rebuild(&slot, "engram.memory_limit is exhausted");
			continue;
		}
		if (after_quarantine) {
			LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
			slot.health.store(SPACE_LOADING, std::memory_order_release);
			slot.cause = QUARANTINE_NONE;
			LWLockRelease(shared_directory_lock());
		}
		begin_load(slot.space_id, replacement);
		engram::core::install(index, replacement, offset);
		engram::core::HnswGraph graph(arena, offset);
		HTAB *generations = old_offset != 0 ? generations_of(engram::core::HnswGraph(arena, old_offset)) : nullptr;
		std::uint64_t loaded = 0;
		char error[k_cause_text_bytes] = "while rebuilding";
		const AppendResult result =
			load_rows_guarded(&slot, graph, shared_ring().last_generation(), generations, loaded, error, sizeof error);
		if (generations != nullptr)
			hash_destroy(generations);
		if (result != AppendResult::ok) {
			filter_clear();
			PopActiveSnapshot();
			end_transaction();
			if (after_quarantine)
				quarantine_space(&slot, quarantine_cause_of(result), graph.size(), error);
			else
				abandon_rebuild(&slot, result == AppendResult::damaged ? error
									   : result == AppendResult::reserve
										   ? "the replacement index would take engram.memory_reserve"
										   : "engram.memory_limit is exhausted");
			continue;
		}
		slot.rebuild_requested.store(2, std::memory_order_release);
		end_load();
		ereport(LOG, (errmsg("engram is rebuilding space \"%s\" from %llu observations", slot.name,
							 static_cast<unsigned long long>(loaded))));
		return;
	}
}

void
finish_rebuilds(void)
{
	engram::core::Arena arena = shared_arena();
	for (SpaceSlot &slot : directory_slots()) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE ||
			slot.rebuild_requested.load(std::memory_order_acquire) != 2)
			continue;
		if (load_filter.active && load_filter.space_id == slot.space_id)
			continue; // still catching up with the ring
		engram::core::IndexSlot &index = directory_index(&slot);
		const unsigned current = index.current.load(std::memory_order_acquire);
		const std::uint64_t offset = index.graphs[1 - current].load(std::memory_order_acquire);
		if (offset == 0)
			continue;
		engram::core::HnswGraph graph(arena, offset);
		if (graph.linked_count() < graph.size())
			continue;
		engram::core::make_current(index, 1 - current);
		directory_destroy_graph(index, current);
		slot.health.store(SPACE_READY, std::memory_order_release);
		slot.rebuild_requested.store(0, std::memory_order_release);
		slot.rebuilds_finished.fetch_add(1, std::memory_order_acq_rel);
		ereport(LOG, (errmsg("engram finished rebuilding space \"%s\"", slot.name)));
	}
}
