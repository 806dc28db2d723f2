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

#include "pg/file_load.hpp"
#include "pg/forget_spill.hpp"
#include "pg/guc.hpp"
#include "pg/observation_rows.hpp"
#include "pg/progress.hpp"
#include "pg/quarantine.hpp"
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

// Appends the rows SPI just returned (ENGRAM_OBSERVATION_COLUMNS) to `graph`,
// a graph of `slot`, using `vectors` and `rows` (room for k_load_rows) as
// buffers. Appends nothing when the graph cannot grow, or has grown into
// engram.memory_reserve while holding the most memory.
AppendResult
append_fetched(const SpaceSlot *slot, engram::core::HnswGraph &graph, std::uint64_t generation, HTAB *generations,
			   float *vectors, engram::core::NodeData *rows, std::uint64_t &loaded)
{
	const auto n = static_cast<std::uint32_t>(SPI_processed);
	const std::uint32_t dim = graph.dim();
	TokenBuffer tokens;
	copy_observations(SPI_tuptable, n, dim, generation, vectors, rows, &tokens);
	if (generations != nullptr)
		for (std::uint32_t i = 0; i < n; ++i)
			if (auto *e = static_cast<GenerationEntry *>(hash_search(generations, &rows[i].label, HASH_FIND, nullptr)))
				rows[i].generation = e->generation;
	SPI_freetuptable(SPI_tuptable);
	const AppendResult result = graph.reserve(graph.size() + n, graph.token_slots() + tokens.count) !=
										engram::core::HnswStatus::ok
									? AppendResult::no_memory
								: takes_the_reserve(slot) ? AppendResult::reserve
														  : AppendResult::ok;
	if (result == AppendResult::ok) {
		std::uint32_t first = 0;
		(void) graph.append_batch(std::span<const float>(vectors, std::size_t{n} * dim),
								  std::span<const engram::core::NodeData>(rows, n), first);
		directory_owe(slot, DUTY_LINK);
		loaded += n;
		progress_rows(loaded);
	}
	if (tokens.tokens != nullptr)
		pfree(tokens.tokens);
	CHECK_FOR_INTERRUPTS();
	return result;
}

// Appends every row of the space visible to the active snapshot to `graph`,
// a graph of `slot`. Stops (having appended a prefix) when append_fetched does.
AppendResult
load_rows(const SpaceSlot *slot, engram::core::HnswGraph &graph, std::uint64_t generation, HTAB *generations,
		  std::uint64_t &loaded)
{
	Oid argtype = INT4OID;
	SPIPlanPtr plan = SPI_prepare("SELECT " ENGRAM_OBSERVATION_COLUMNS
								  " FROM engram.observations WHERE space_id OPERATOR(pg_catalog.=) $1 "
								  "ORDER BY id",
								  1, &argtype);
	Datum arg = Int32GetDatum(slot->space_id);
	Portal portal = SPI_cursor_open(nullptr, plan, &arg, nullptr, true);
	const std::uint32_t dim = graph.dim();
	auto *vectors = static_cast<float *>(palloc(sizeof(float) * dim * k_load_rows));
	auto *rows = static_cast<engram::core::NodeData *>(palloc(sizeof(engram::core::NodeData) * k_load_rows));
	AppendResult result = AppendResult::ok;
	for (;;) {
		SPI_cursor_fetch(portal, true, k_load_rows);
		if (SPI_processed == 0)
			break;
		result = append_fetched(slot, graph, generation, generations, vectors, rows, loaded);
		if (result != AppendResult::ok)
			break;
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	pfree(vectors);
	pfree(rows);
	return result;
}

// Appends the rows with the given ids (ascending) to `graph`: the rows a
// graph file lacks. Stops like load_rows.
AppendResult
load_missing_rows(const SpaceSlot *slot, engram::core::HnswGraph &graph, std::uint64_t generation,
				  const std::int64_t *ids, std::uint64_t count, std::uint64_t &loaded)
{
	if (takes_the_reserve(slot))
		return AppendResult::reserve;
	Oid types[2] = {INT4OID, INT8ARRAYOID};
	SPIPlanPtr plan = SPI_prepare("SELECT " ENGRAM_OBSERVATION_COLUMNS " FROM engram.observations "
								  "WHERE space_id OPERATOR(pg_catalog.=) $1 "
								  "AND id OPERATOR(pg_catalog.=) ANY ($2) ORDER BY id",
								  2, types);
	const std::uint32_t dim = graph.dim();
	auto *vectors = static_cast<float *>(palloc(sizeof(float) * dim * k_load_rows));
	auto *rows = static_cast<engram::core::NodeData *>(palloc(sizeof(engram::core::NodeData) * k_load_rows));
	auto *elements = static_cast<Datum *>(palloc(sizeof(Datum) * k_load_rows));
	AppendResult result = AppendResult::ok;
	for (std::uint64_t from = 0; from < count && result == AppendResult::ok; from += k_load_rows) {
		const auto n = static_cast<int>(std::min<std::uint64_t>(k_load_rows, count - from));
		for (int i = 0; i < n; ++i)
			elements[i] = Int64GetDatum(ids[from + static_cast<std::uint64_t>(i)]);
		ArrayType *array =
			construct_array(elements, n, INT8OID, sizeof(std::int64_t), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
		Datum args[2] = {Int32GetDatum(slot->space_id), PointerGetDatum(array)};
		if (SPI_execute_plan(plan, args, nullptr, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read engram.observations");
		result = append_fetched(slot, graph, generation, nullptr, vectors, rows, loaded);
		pfree(array);
	}
	SPI_freeplan(plan);
	pfree(vectors);
	pfree(rows);
	pfree(elements);
	return result;
}

// The space's rows visible to the active snapshot, counted first where a
// progress report shows how many rows are to be read: a rebuild, whose
// count costs an index scan of the rows it is about to read. (The start-up
// load does not count: at 100,000 spaces, one scan per space would add up.)
std::uint64_t
count_rows(std::int32_t space_id)
{
	Oid argtype = INT4OID;
	Datum arg = Int32GetDatum(space_id);
	if (SPI_execute_with_args("SELECT pg_catalog.count(*) FROM engram.observations "
							  "WHERE space_id OPERATOR(pg_catalog.=) $1",
							  1, &argtype, &arg, nullptr, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not count the rows of engram.observations");
	bool isnull = false;
	const Datum count = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_freetuptable(SPI_tuptable);
	return isnull ? 0 : static_cast<std::uint64_t>(DatumGetInt64(count));
}

// load_rows() inside a subtransaction, so that a space whose rows cannot be
// read is quarantined and loading goes on: AppendResult::damaged, with the
// error's message in `error`. A cancel is passed on. With `count_first`,
// the rows are counted for engram.progress before they are read.
AppendResult
load_rows_guarded(const SpaceSlot *slot, engram::core::HnswGraph &graph, std::uint64_t generation, HTAB *generations,
				  std::uint64_t &loaded, char *error, std::size_t error_size, bool count_first = false)
{
	AppendResult result = AppendResult::damaged;
	auto load = [&] {
		if (count_first)
			progress_phase(PHASE_READING_ROWS, count_rows(slot->space_id));
		result = load_rows(slot, graph, generation, generations, loaded);
	};
	return run_in_subtransaction(load, error, error_size) ? result : AppendResult::damaged;
}

// load_missing_rows() inside a subtransaction, like load_rows_guarded().
AppendResult
load_missing_rows_guarded(const SpaceSlot *slot, engram::core::HnswGraph &graph, std::uint64_t generation,
						  const FileLoad &file, std::uint64_t &loaded, char *error, std::size_t error_size)
{
	AppendResult result = AppendResult::damaged;
	auto load = [&] { result = load_missing_rows(slot, graph, generation, file.missing, file.missing_count, loaded); };
	return run_in_subtransaction(load, error, error_size) ? result : AppendResult::damaged;
}

// The snapshots (as_of) a space loaded at `generation` cannot answer, the
// generations [from, to): all of them before it, if its rows came from the
// table; if they came from its graph file, those the file could not (as
// written down in it) and, if the table had rows the file lacked, those
// after the file's write up to now, since those rows now carry `generation`
// instead of their own.
void
set_snapshot_gap(SpaceSlot *slot, const FileLoad &file, std::uint64_t generation)
{
	if (!file.loaded) {
		directory_set_snapshot_gap(slot, 0, generation);
		return;
	}
	directory_set_snapshot_gap(slot, file.stored.snapshot_gap_from, file.stored.snapshot_gap_to);
	if (file.missing_count > 0)
		directory_widen_snapshot_gap(slot, file.stored.max_generation + 1, generation);
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
		if (slot.rebuild_requested.load(std::memory_order_acquire) == 2) {
			slot.rebuild_requested.store(1, std::memory_order_release);
			directory_owe(&slot, DUTY_REBUILD);
		}
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
	load_filter.generation = generation;
	progress_reset();
	// Spilled forgets the snapshot sees are in no graph's future: the filter
	// keeps their records from every loaded graph, and records of an earlier
	// run of the server are gone with its ring. Chunks that cannot be cleared
	// now only take room until the next start.
	char error[k_cause_text_bytes];
	auto clear = [] { forget_spill_clear_seen(); };
	if (!run_in_subtransaction(clear, error, sizeof error))
		ereport(WARNING, (errmsg("engram could not clear engram._forget_spill: %s", error)));

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

	std::uint64_t loaded = 0, quarantined = 0, from_files = 0, from_file_rows = 0;
	progress_begin(PROGRESS_LOAD, 0, PHASE_READING_ROWS, k_progress_unknown);
	for (std::uint64_t i = 0; i < spaces - homeless; ++i) {
		LWLockAcquire(shared_directory_lock(), LW_SHARED);
		SpaceSlot *slot = directory_find(definitions[i].space_id);
		LWLockRelease(shared_directory_lock());
		FileLoad file;
		if (slot != nullptr && engram_persist && slot->health.load(std::memory_order_acquire) == SPACE_READY) {
			progress_next_space(definitions[i].space_id, PHASE_READING_FILE, k_progress_unknown);
			file = load_graph_file(slot, generation);
		}
		if (slot == nullptr || !space_takes_rows(slot)) {
			quarantined++;
			continue;
		}
		progress_next_space(definitions[i].space_id, PHASE_READING_ROWS,
							file.loaded ? file.missing_count : k_progress_unknown);
		engram::core::IndexSlot &index = directory_index(slot);
		engram::core::HnswGraph graph(shared_arena(),
									  index.graphs[index.current.load(std::memory_order_acquire)].load());
		char error[k_cause_text_bytes] = "while loading after a start";
		std::uint64_t caught_up = 0;
		const AppendResult result =
			file.loaded ? load_missing_rows_guarded(slot, graph, generation, file, caught_up, error, sizeof error)
						: load_rows_guarded(slot, graph, generation, nullptr, caught_up, error, sizeof error);
		loaded += caught_up;
		if (result != AppendResult::ok) {
			quarantine_space(slot, quarantine_cause_of(result), graph.size(), error);
			quarantined++;
			continue;
		}
		set_snapshot_gap(slot, file, generation);
		if (!file.loaded && graph.size() == 0) {
			// A space without rows holds no graph, as after its creation: of
			// 100,000 tenants most may be empty, and a graph's header alone
			// is 4 KB. Its first rows make one (space_takes_rows).
			directory_destroy_graph(index, index.current.load(std::memory_order_acquire));
			continue;
		}
		if (!file.loaded)
			continue;
		from_files++;
		from_file_rows += graph.size() - caught_up;
		ereport(LOG, (errmsg("engram loaded space \"%s\" from its graph file: %llu observations, %llu caught up from "
							 "engram.observations",
							 slot->name, static_cast<unsigned long long>(graph.size() - caught_up),
							 static_cast<unsigned long long>(caught_up))));
	}
	progress_end();
	pfree(definitions);
	shared_state()->loaded_generation.store(generation, std::memory_order_release);
	end_load();
	ereport(LOG,
			(errmsg("engram worker %d loaded %llu observations of %llu spaces (%llu quarantined); %llu spaces "
					"came from graph files, %llu observations from engram.observations; linking what is "
					"not linked now",
					worker_index, static_cast<unsigned long long>(loaded + from_file_rows),
					static_cast<unsigned long long>(spaces), static_cast<unsigned long long>(quarantined + homeless),
					static_cast<unsigned long long>(from_files), static_cast<unsigned long long>(loaded))));
}

namespace {

// Starts the rebuild a slot asked for (rebuild_requested 1); true if one
// started (it goes on as its load catches up with the ring).
bool
start_rebuild(SpaceSlot &slot)
{
	engram::core::IndexSlot &index = directory_index(&slot);
	const unsigned current = index.current.load(std::memory_order_acquire);
	const unsigned replacement = 1 - current;
	if (index.graphs[replacement].load(std::memory_order_acquire) != 0)
		return false; // already running
	// A quarantined space has no graph: its replacement is all it will have.
	const bool after_quarantine = slot.health.load(std::memory_order_acquire) != SPACE_READY;
	const std::uint64_t old_offset = index.graphs[current].load(std::memory_order_acquire);
	if (!after_quarantine && old_offset == 0) {
		// Nothing stored yet: there is nothing to rebuild.
		slot.rebuild_requested.store(0, std::memory_order_release);
		slot.rebuilds_finished.fetch_add(1, std::memory_order_acq_rel);
		return false;
	}
	engram::core::Arena arena = shared_arena();
	std::uint64_t offset = 0;
	if (engram::core::HnswGraph::create(arena, directory_config(&slot), offset) != engram::core::HnswStatus::ok) {
		if (after_quarantine) {
			quarantine_space(&slot, QUARANTINE_MEMORY_LIMIT, 0, "while rebuilding");
			return false;
		}
		abandon_rebuild(&slot, "engram.memory_limit is exhausted");
		return false;
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
	// What engram.progress shows while the replacement is linked.
	slot.rebuild_started_at.store(progress_begin(PROGRESS_REBUILD, slot.space_id, PHASE_READING_ROWS,
												 k_progress_unknown),
								  std::memory_order_relaxed);
	slot.rebuild_started_by.store(MyProcPid, std::memory_order_relaxed);
	HTAB *generations = old_offset != 0 ? generations_of(engram::core::HnswGraph(arena, old_offset)) : nullptr;
	std::uint64_t loaded = 0;
	char error[k_cause_text_bytes] = "while rebuilding";
	const std::uint64_t generation = shared_ring().last_generation();
	load_filter.generation = generation;
	const AppendResult result =
		load_rows_guarded(&slot, graph, generation, generations, loaded, error, sizeof error, true);
	if (generations != nullptr)
		hash_destroy(generations);
	if (result != AppendResult::ok) {
		progress_end();
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
		return false;
	}
	if (after_quarantine) {
		// No graph lent its generations: every row now carries this one.
		directory_set_snapshot_gap(&slot, 0, generation);
	}
	// The rows are read: from here on engram.progress shows the linking (fn_progress.cpp).
	progress_end();
	slot.rebuild_requested.store(2, std::memory_order_release);
	end_load();
	ereport(LOG, (errmsg("engram is rebuilding space \"%s\" from %llu observations", slot.name,
						 static_cast<unsigned long long>(loaded))));
	return true;
}

bool
rebuild_owed(const SpaceSlot &slot)
{
	return slot.state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE &&
		   slot.rebuild_requested.load(std::memory_order_acquire) != 0;
}

} // namespace

void
start_rebuilds(void)
{
	if (load_filter.active)
		return; // one load at a time: the filter holds one snapshot
	bool started = false;
	auto visit = [&started](SpaceSlot &slot) {
		if (!started && rebuild_owed(slot) && slot.rebuild_requested.load(std::memory_order_acquire) == 1)
			started = start_rebuild(slot);
	};
	directory_visit_owing(DUTY_REBUILD, visit, rebuild_owed);
}

void
finish_rebuilds(void)
{
	engram::core::Arena arena = shared_arena();
	auto visit = [&arena](SpaceSlot &slot) {
		if (!rebuild_owed(slot) || slot.rebuild_requested.load(std::memory_order_acquire) != 2)
			return;
		if (load_filter.active && load_filter.space_id == slot.space_id)
			return; // still catching up with the ring
		engram::core::IndexSlot &index = directory_index(&slot);
		const unsigned current = index.current.load(std::memory_order_acquire);
		const std::uint64_t offset = index.graphs[1 - current].load(std::memory_order_acquire);
		if (offset == 0)
			return;
		engram::core::HnswGraph graph(arena, offset);
		if (graph.linked_count() < graph.size())
			return;
		engram::core::make_current(index, 1 - current);
		directory_destroy_graph(index, current);
		slot.health.store(SPACE_READY, std::memory_order_release);
		slot.rebuild_requested.store(0, std::memory_order_release);
		slot.rebuilds_finished.fetch_add(1, std::memory_order_acq_rel);
		ereport(LOG, (errmsg("engram finished rebuilding space \"%s\"", slot.name)));
	};
	directory_visit_owing(DUTY_REBUILD, visit, rebuild_owed);
}
