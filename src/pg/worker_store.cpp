// Storing observations into the spaces' graphs (see worker_store.hpp).
//
// Whole or nothing: every graph is first reserved for all rows of a record
// (HnswGraph::reserve guarantees the appends that follow), so a record whose
// space cannot grow is left in the ring untouched and retried later. Rows read
// back from the table (id-range records) are gathered into palloc'd buffers
// first, so that an error while reading leaves no graph half-appended.
#include "pg/worker_store.hpp"

#include <algorithm>
#include <cstring>

#include "core/observation_batch.hpp"
#include "pg/guc.hpp"

LoadFilter load_filter;

namespace {

constexpr int k_fetch_rows = 2000;

bool in_transaction = false;

engram::core::Metric
metric_from_name(const char *name)
{
	if (strcmp(name, "l2") == 0)
		return engram::core::Metric::l2;
	if (strcmp(name, "ip") == 0)
		return engram::core::Metric::inner_product;
	return engram::core::Metric::cosine;
}

void
warn_memory_exhausted(std::int32_t space_id)
{
	shared_state()->memory_stalled.store(1, std::memory_order_relaxed);
	static TimestampTz last_warning = 0;
	const TimestampTz now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(last_warning, now, 10000))
		return;
	last_warning = now;
	ereport(WARNING,
			(errcode(ERRCODE_OUT_OF_MEMORY), errmsg("space %d cannot grow: engram.memory_limit is exhausted", space_id),
			 errdetail("%zu of %zu bytes are in use; ingest stalls and backpressure will refuse new observations.",
					   shared_arena().used_bytes(), shared_arena().capacity_bytes()),
			 errhint("Raise engram.memory_limit, or drop unused spaces.")));
}

bool
visible_to_filter(TransactionId xid)
{
	if (TransactionIdPrecedes(xid, load_filter.xmin))
		return true;
	if (!TransactionIdPrecedes(xid, load_filter.xmax))
		return false;
	for (std::uint32_t i = 0; i < load_filter.xcnt; ++i)
		if (load_filter.xip[i] == xid)
			return false;
	return true;
}

// Which graph the filter keeps this record from: -1 none, 2 all of them.
int
filtered_graphs(const engram::core::RecordView &record, const engram::core::BatchView &batch)
{
	if (!load_filter.active || record.position >= load_filter.tail_mark || !visible_to_filter(batch.header.xid))
		return -1;
	if (load_filter.space_id < 0)
		return 2;
	return batch.header.space_id == load_filter.space_id ? static_cast<int>(load_filter.replacement) : -1;
}

// Reads the rows of an id-range record into palloc'd buffers; returns the row count.
std::uint32_t
read_id_ranges(const engram::core::BatchView &batch, float **vectors, engram::core::NodeData **rows,
			   std::uint64_t generation)
{
	std::uint64_t total = 0;
	for (const engram::core::IdRange &r : batch.ranges)
		total += static_cast<std::uint64_t>(r.last - r.first + 1);
	const std::uint32_t dim = batch.header.dim;
	*vectors = static_cast<float *>(palloc_extended(sizeof(float) * dim * std::max<std::uint64_t>(total, 1),
													 MCXT_ALLOC_HUGE));
	*rows = static_cast<engram::core::NodeData *>(
		palloc_extended(sizeof(engram::core::NodeData) * std::max<std::uint64_t>(total, 1), MCXT_ALLOC_HUGE));
	ensure_transaction();
	std::uint32_t n = 0;
	Oid types[3] = {INT4OID, INT8OID, INT8OID};
	for (const engram::core::IdRange &r : batch.ranges) {
		for (std::int64_t from = r.first; from <= r.last; from += k_fetch_rows) {
			Datum args[3] = {Int32GetDatum(batch.header.space_id), Int64GetDatum(from),
							 Int64GetDatum(std::min<std::int64_t>(r.last, from + k_fetch_rows - 1))};
			if (SPI_execute_with_args("SELECT id, embedding, confidence FROM engram.observations "
									  "WHERE space_id OPERATOR(pg_catalog.=) $1 AND id OPERATOR(pg_catalog.>=) $2 "
									  "AND id OPERATOR(pg_catalog.<=) $3 ORDER BY id",
									  3, types, args, nullptr, false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read engram.observations");
			TupleDesc desc = SPI_tuptable->tupdesc;
			for (std::uint64_t i = 0; i < SPI_processed && n < total; ++i, ++n) {
				HeapTuple tuple = SPI_tuptable->vals[i];
				bool isnull = false;
				ArrayType *embedding = DatumGetArrayTypeP(SPI_getbinval(tuple, desc, 2, &isnull));
				std::memcpy(*vectors + std::size_t{n} * dim, ARR_DATA_PTR(embedding), sizeof(float) * dim);
				(*rows)[n] = engram::core::NodeData{generation, DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull)),
													DatumGetFloat4(SPI_getbinval(tuple, desc, 3, &isnull))};
			}
			SPI_freetuptable(SPI_tuptable);
		}
	}
	return n;
}

} // namespace

void
ensure_transaction(void)
{
	if (in_transaction)
		return;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	in_transaction = true;
}

void
end_transaction(void)
{
	if (!in_transaction)
		return;
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	in_transaction = false;
}

SpaceSlot *
slot_for(std::int32_t space_id)
{
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	SpaceSlot *slot = directory_find(space_id);
	LWLockRelease(shared_directory_lock());
	if (slot != nullptr)
		return slot;
	ensure_transaction();
	Datum arg = Int32GetDatum(space_id);
	Oid argtype = INT4OID;
	if (SPI_execute_with_args("SELECT dim, metric, m, ef_construction FROM engram.space_catalog "
							  "WHERE space_id OPERATOR(pg_catalog.=) $1",
							  1, &argtype, &arg, nullptr, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read engram.space_catalog");
	if (SPI_processed == 0)
		return nullptr;
	HeapTuple tuple = SPI_tuptable->vals[0];
	TupleDesc desc = SPI_tuptable->tupdesc;
	bool isnull = false;
	engram::core::HnswConfig config;
	config.dim = static_cast<std::uint32_t>(DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull)));
	config.metric = metric_from_name(SPI_getvalue(tuple, desc, 2));
	config.m = static_cast<std::uint32_t>(DatumGetInt32(SPI_getbinval(tuple, desc, 3, &isnull)));
	config.ef_construction = static_cast<std::uint32_t>(DatumGetInt32(SPI_getbinval(tuple, desc, 4, &isnull)));
	config.seed = static_cast<std::uint64_t>(space_id);
	LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
	slot = directory_install(space_id, config);
	LWLockRelease(shared_directory_lock());
	if (slot == nullptr)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("no room for the index of space %d", space_id),
						errdetail("All %d space slots are in use or engram.memory_limit is exhausted.",
								  k_engram_max_spaces),
						errhint("Drop unused spaces or raise engram.memory_limit.")));
	return slot;
}

void
abandon_rebuild(SpaceSlot *slot, const char *reason)
{
	engram::core::IndexSlot &index = directory_index(slot);
	const unsigned replacement = 1 - index.current.load(std::memory_order_acquire);
	directory_destroy_graph(index, replacement);
	if (load_filter.active && load_filter.space_id == slot->space_id)
		filter_clear();
	slot->rebuild_requested.store(0, std::memory_order_release);
	slot->rebuilds_failed.fetch_add(1, std::memory_order_acq_rel);
	ereport(WARNING, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("rebuild of space %d abandoned: %s", slot->space_id, reason),
					  errhint("Raise engram.memory_limit: a rebuild needs room for a second copy of the index.")));
}

bool
append_rows(SpaceSlot *slot, const float *vectors, const engram::core::NodeData *rows, std::uint32_t n, int skip)
{
	engram::core::IndexSlot &index = directory_index(slot);
	const unsigned current = index.current.load(std::memory_order_acquire);
	engram::core::Arena arena = shared_arena();
	for (const unsigned which : {current, 1 - current}) {
		const std::uint64_t offset = index.graphs[which].load(std::memory_order_acquire);
		if (offset == 0 || static_cast<int>(which) == skip || skip == 2)
			continue;
		engram::core::HnswGraph graph(arena, offset);
		if (graph.reserve(graph.size() + n) == engram::core::HnswStatus::ok)
			continue;
		if (which == current)
			return false;
		abandon_rebuild(slot, "engram.memory_limit is exhausted");
	}
	for (const unsigned which : {current, 1 - current}) {
		const std::uint64_t offset = index.graphs[which].load(std::memory_order_acquire);
		if (offset == 0 || static_cast<int>(which) == skip || skip == 2)
			continue;
		engram::core::HnswGraph graph(arena, offset);
		std::uint32_t first = 0;
		const engram::core::HnswStatus status =
			graph.append_batch(std::span<const float>(vectors, std::size_t{n} * graph.dim()),
							   std::span<const engram::core::NodeData>(rows, n), first);
		// Ingest validates every vector, so this reports damage rather than input.
		if (status != engram::core::HnswStatus::ok)
			ereport(WARNING, (errmsg("space %d: %u observations not indexed: %s", slot->space_id, n,
									 engram::core::to_string(status))));
	}
	return true;
}

std::int64_t
store_record(const engram::core::RecordView &record)
{
	const std::optional<engram::core::BatchView> batch = engram::core::parse_batch(record.payload);
	if (!batch)
		elog(ERROR, "malformed ring record at position %llu", static_cast<unsigned long long>(record.position));
	// Records that need no storing still leave the pipeline: the load already
	// counted the rows it read, and a dropped space's rows are gone.
	const int skip = filtered_graphs(record, *batch);
	SpaceSlot *slot = skip == 2 ? nullptr : slot_for(batch->header.space_id);
	if (slot == nullptr) {
		shared_state()->observations_stored.fetch_add(engram::core::observation_count(*batch),
													  std::memory_order_relaxed);
		return 0;
	}
	// Capture writes only rows of the space's dimension; anything else would
	// be read past its end, so it is dropped rather than trusted.
	if (batch->header.dim != slot->dim) {
		ereport(WARNING, (errmsg("engram dropped a ring record of %u-dimensional vectors for space %d, which holds "
								 "%u-dimensional ones",
								 batch->header.dim, batch->header.space_id, slot->dim),
						  errhint("engram.rebuild() restores the space's index from engram.observations.")));
		return 0;
	}
	std::uint32_t stored = batch->header.count;
	bool ok;
	if (batch->header.kind == engram::core::BatchKind::vectors) {
		auto *rows = static_cast<engram::core::NodeData *>(palloc(sizeof(engram::core::NodeData) * std::max(stored, 1u)));
		for (std::uint32_t i = 0; i < stored; ++i)
			rows[i] = engram::core::NodeData{record.generation, batch->ids[i], batch->confidences[i]};
		ok = append_rows(slot, batch->vectors.data(), rows, stored, skip);
		pfree(rows);
	} else {
		float *vectors = nullptr;
		engram::core::NodeData *rows = nullptr;
		stored = read_id_ranges(*batch, &vectors, &rows, record.generation);
		ok = append_rows(slot, vectors, rows, stored, skip);
		pfree(vectors);
		pfree(rows);
	}
	if (!ok) {
		warn_memory_exhausted(batch->header.space_id);
		return -1;
	}
	shared_state()->memory_stalled.store(0, std::memory_order_relaxed);
	shared_state()->observations_stored.fetch_add(stored, std::memory_order_relaxed);
	return stored;
}

void
filter_from_snapshot(Snapshot snapshot)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	load_filter.xmin = snapshot->xmin;
	load_filter.xmax = snapshot->xmax;
	load_filter.xcnt = snapshot->xcnt;
	load_filter.xip = static_cast<TransactionId *>(palloc(sizeof(TransactionId) * std::max<std::uint32_t>(snapshot->xcnt, 1)));
	std::memcpy(load_filter.xip, snapshot->xip, sizeof(TransactionId) * snapshot->xcnt);
	MemoryContextSwitchTo(old);
}

void
filter_clear(void)
{
	load_filter.active = false;
	if (load_filter.xip != nullptr)
		pfree(load_filter.xip);
	load_filter.xip = nullptr;
}
