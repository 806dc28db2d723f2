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
// Generations: rows loaded at start-up get the generation the load began at
// (the originals are not kept in the table). A rebuild copies each row's
// generation from the graph it replaces, so snapshots (as_of) mean the same
// before and after; rows that graph does not hold yet get the latest
// generation, which only hides them until their own record is published.
#include "pg/worker_load.hpp"

#include <algorithm>
#include <cstring>

#include "pg/worker_store.hpp"

extern "C" {
#include "utils/hsearch.h"
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
	HTAB *map = hash_create("engram rebuild generations", std::max<long>(n, 16), &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (std::uint32_t id = 0; id < n; ++id) {
		const std::int64_t label = graph.label(id);
		auto *entry = static_cast<GenerationEntry *>(hash_search(map, &label, HASH_ENTER, nullptr));
		entry->generation = graph.generation(id);
	}
	return map;
}

// Appends every row of the space visible to the active snapshot to `graph`.
// Returns false (having appended a prefix) if the graph cannot grow.
bool
load_rows(std::int32_t space_id, engram::core::HnswGraph &graph, std::uint64_t generation, HTAB *generations,
		  std::uint64_t &loaded)
{
	Oid argtype = INT4OID;
	SPIPlanPtr plan = SPI_prepare(
		"SELECT id, embedding, confidence FROM engram.observations WHERE space_id OPERATOR(pg_catalog.=) $1 ORDER BY id",
		1, &argtype);
	Datum arg = Int32GetDatum(space_id);
	Portal portal = SPI_cursor_open(nullptr, plan, &arg, nullptr, true);
	const std::uint32_t dim = graph.dim();
	auto *vectors = static_cast<float *>(palloc(sizeof(float) * dim * k_load_rows));
	auto *rows = static_cast<engram::core::NodeData *>(palloc(sizeof(engram::core::NodeData) * k_load_rows));
	bool ok = true;
	for (;;) {
		SPI_cursor_fetch(portal, true, k_load_rows);
		const auto n = static_cast<std::uint32_t>(SPI_processed);
		if (n == 0)
			break;
		TupleDesc desc = SPI_tuptable->tupdesc;
		for (std::uint32_t i = 0; i < n; ++i) {
			HeapTuple tuple = SPI_tuptable->vals[i];
			bool isnull = false;
			const std::int64_t id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
			ArrayType *embedding = DatumGetArrayTypeP(SPI_getbinval(tuple, desc, 2, &isnull));
			std::memcpy(vectors + std::size_t{i} * dim, ARR_DATA_PTR(embedding), sizeof(float) * dim);
			std::uint64_t g = generation;
			if (generations != nullptr)
				if (auto *e = static_cast<GenerationEntry *>(hash_search(generations, &id, HASH_FIND, nullptr)))
					g = e->generation;
			rows[i] = engram::core::NodeData{g, id, DatumGetFloat4(SPI_getbinval(tuple, desc, 3, &isnull))};
		}
		SPI_freetuptable(SPI_tuptable);
		if (graph.reserve(graph.size() + n) != engram::core::HnswStatus::ok) {
			ok = false;
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
	return ok;
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

} // namespace

void
load_spaces(int worker_index)
{
	engram::core::Ring ring = shared_ring();
	begin_load(-1, 0);
	ring.seed_generation(GetXLogInsertRecPtr());
	const std::uint64_t generation = ring.last_generation();

	for (SpaceSlot &slot : shared_state()->spaces)
		if (slot.state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE)
			directory_free(&slot);

	if (SPI_execute("SELECT space_id FROM engram.space_catalog ORDER BY space_id", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read engram.space_catalog");
	const std::uint64_t spaces = SPI_processed;
	auto *ids = static_cast<std::int32_t *>(palloc(sizeof(std::int32_t) * std::max<std::uint64_t>(spaces, 1)));
	for (std::uint64_t i = 0; i < spaces; ++i) {
		bool isnull = false;
		ids[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	std::uint64_t loaded = 0;
	for (std::uint64_t i = 0; i < spaces; ++i) {
		SpaceSlot *slot = slot_for(ids[i]);
		if (slot == nullptr)
			continue;
		engram::core::HnswGraph graph(shared_arena(), directory_index(slot).graphs[0].load());
		if (!load_rows(ids[i], graph, generation, nullptr, loaded))
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("space %d does not fit in engram.memory_limit", ids[i]),
							errdetail("Loading stopped after %llu observations.",
									  static_cast<unsigned long long>(graph.size())),
							errhint("Raise engram.memory_limit and restart the server.")));
	}
	shared_state()->loaded_generation.store(generation, std::memory_order_release);
	end_load();
	shared_state()->observations_published.fetch_add(loaded, std::memory_order_relaxed);
	shared_state()->observations_stored.fetch_add(loaded, std::memory_order_relaxed);
	ereport(LOG, (errmsg("engram worker %d loaded %llu observations of %llu spaces; linking them now", worker_index,
						 static_cast<unsigned long long>(loaded), static_cast<unsigned long long>(spaces))));
}

void
start_rebuilds(void)
{
	if (load_filter.active)
		return; // one load at a time: the filter holds one snapshot
	for (SpaceSlot &slot : shared_state()->spaces) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE ||
			slot.rebuild_requested.load(std::memory_order_acquire) != 1)
			continue;
		engram::core::IndexSlot &index = directory_index(&slot);
		const unsigned current = index.current.load(std::memory_order_acquire);
		const unsigned replacement = 1 - current;
		if (index.graphs[replacement].load(std::memory_order_acquire) != 0)
			continue; // already running
		engram::core::Arena arena = shared_arena();
		engram::core::HnswGraph old_graph(arena, index.graphs[current].load(std::memory_order_acquire));
		engram::core::HnswConfig config;
		config.dim = old_graph.dim();
		config.metric = old_graph.metric();
		config.encoding = old_graph.encoding();
		config.m = old_graph.m();
		config.ef_construction = old_graph.ef_construction();
		config.seed = static_cast<std::uint64_t>(slot.space_id);
		std::uint64_t offset = 0;
		if (engram::core::HnswGraph::create(arena, config, offset) != engram::core::HnswStatus::ok) {
			slot.rebuild_requested.store(0, std::memory_order_release);
			slot.rebuilds_failed.fetch_add(1, std::memory_order_acq_rel);
			continue;
		}
		begin_load(slot.space_id, replacement);
		engram::core::HnswGraph graph(arena, offset);
		HTAB *generations = generations_of(old_graph);
		std::uint64_t loaded = 0;
		const bool ok = load_rows(slot.space_id, graph, shared_ring().last_generation(), generations, loaded);
		hash_destroy(generations);
		if (!ok) {
			graph.destroy();
			filter_clear();
			PopActiveSnapshot();
			end_transaction();
			slot.rebuild_requested.store(0, std::memory_order_release);
			slot.rebuilds_failed.fetch_add(1, std::memory_order_acq_rel);
			ereport(WARNING, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("rebuild of space %d abandoned: engram.memory_limit is exhausted", slot.space_id),
							  errhint("Raise engram.memory_limit: a rebuild needs room for a second copy of the index.")));
			continue;
		}
		engram::core::install(index, replacement, offset);
		slot.rebuild_requested.store(2, std::memory_order_release);
		end_load();
		ereport(LOG, (errmsg("engram is rebuilding space %d from %llu observations", slot.space_id,
							 static_cast<unsigned long long>(loaded))));
		return;
	}
}

void
finish_rebuilds(void)
{
	engram::core::Arena arena = shared_arena();
	for (SpaceSlot &slot : shared_state()->spaces) {
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
		slot.rebuild_requested.store(0, std::memory_order_release);
		slot.rebuilds_finished.fetch_add(1, std::memory_order_acq_rel);
		ereport(LOG, (errmsg("engram finished rebuilding space %d", slot.space_id)));
	}
}
