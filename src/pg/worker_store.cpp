// Storing observations into the spaces' graphs (see worker_store.hpp).
//
// Every ready record is consumed: a space that cannot take it is quarantined
// (quarantine.hpp) and the record dropped, so no space can hold the ring,
// and with it every other space, back; the rows stay in the table.
//
// Vector records are stored whole or not at all: every graph is first
// reserved for all rows of the record (HnswGraph::reserve guarantees the
// appends that follow), then appended to.
//
// Id-range records (a transaction too large for the ring, e.g. a bulk COPY)
// are read back from the table and stored in chunks of at most
// k_chunk_bytes of vectors, so a worker's memory stays bounded whatever the
// size of the transaction. Each committed row is still stored exactly once:
//   - a chunk is read in id order inside a subtransaction, appended to every
//     graph of the space, and only then is the record's progress (range,
//     next id) published in shared memory. A worker that stops between two
//     chunks (SIGTERM, an error) leaves the record in the ring; whoever
//     stores it next goes on from the published progress. Ring positions
//     never repeat, so the progress names exactly one record.
//   - A start-up load destroys every graph and forgets the progress: the
//     record is then filtered out or stored whole, like any other.
//   - A rebuild that starts while such a record is half stored takes its
//     snapshot after the record's commit, so the filter keeps the whole record
//     from the replacement graph (the snapshot holds its rows), while the
//     current graph takes the rest from the progress.
//   - A chunk that cannot be read or stored quarantines the space, which
//     frees its graphs: the rows stored before it do not matter.
//
// The read-back sees the rows as they are now, not as the transaction left
// them: one deleted since is not stored at all (its forget finds nothing),
// one updated since is stored with its new confidence, metadata and time at
// the record's generation. Recall as of the generations between the record's
// and the change's would miss the row or see the new values. Such snapshots
// are refused instead: a chunk holding fewer rows than its ids, or a row
// whose version another transaction wrote, opens a read-back hole in the
// space (SpaceSlot::read_back_from/until). The changing transaction was
// visible to the read, so it had already reserved its ring records, behind
// the tail the hole notes; until the drain passes that tail, the space's gap
// is widened over every generation that can be published
// (cover_read_backs), which ends by covering the change's own generation.
// The test is cautious: a row the transaction deleted itself, or wrote in a
// subtransaction (another xid), opens a hole too, which refuses snapshots
// that could have been answered but never answers one wrongly.
//
// Spilled-forgets records are read back from engram._forget_spill the same
// way, chunk by chunk, but need no progress: forgetting an id again at the
// same generation changes nothing, so a worker that stops half way lets the
// next one start over (forget_spill.hpp).
#include "pg/worker_store.hpp"

#include <algorithm>
#include <cstring>

#include "core/observation_batch.hpp"
#include "pg/forget_spill.hpp"
#include "pg/guc.hpp"
#include "pg/kept_plan.hpp"
#include "pg/metadata_tokens.hpp"
#include "pg/metrics.hpp"
#include "pg/observation_rows.hpp"
#include "pg/quarantine.hpp"

extern "C" {
#include "utils/resowner.h"
}

LoadFilter load_filter;

namespace {

constexpr std::uint32_t k_fetch_rows = 2000;
// Vectors read back from the table at a time.
constexpr std::size_t k_chunk_bytes = std::size_t{4} << 20;

bool in_transaction = false;

} // namespace

bool
filter_sees(TransactionId xid)
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

namespace {

// Which graph the filter keeps this record from: -1 none, 2 all of them.
int
filtered_graphs(const engram::core::RecordView &record, const engram::core::BatchView &batch)
{
	if (!load_filter.active || record.position >= load_filter.tail_mark || !filter_sees(batch.header.xid))
		return -1;
	if (load_filter.space_id < 0)
		return 2;
	return batch.header.space_id == load_filter.space_id ? static_cast<int>(load_filter.replacement) : -1;
}

// A record the filter keeps from a loaded graph: its rows are there, read
// from the table with the load's generation instead of the record's own, so
// the snapshots between the two cannot tell them apart; the space's gap
// grows to cover them (its commit may even be stamped after the load's
// snapshot, with a later generation than the load's).
void
widen_snapshot_gap(std::int32_t space_id, std::uint64_t generation)
{
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	if (SpaceSlot *slot = directory_find(space_id))
		directory_widen_snapshot_gap(slot, std::min(generation, load_filter.generation),
									 std::max(generation, load_filter.generation));
	LWLockRelease(shared_directory_lock());
}

std::uint64_t
space_bytes(const SpaceSlot &slot)
{
	const engram::core::IndexSlot &index = directory_index(&slot);
	std::uint64_t total = 0;
	for (unsigned which = 0; which < 2; ++which)
		if (const std::uint64_t offset = index.graphs[which].load(std::memory_order_acquire); offset != 0)
			total += engram::core::HnswGraph(shared_arena(), offset).used_bytes();
	return total;
}

void
give_up(SpaceSlot *slot, AppendResult result, engram::core::HnswStatus status)
{
	quarantine_space(slot, quarantine_cause_of(result), space_observations(slot),
					 result == AppendResult::damaged ? engram::core::to_string(status) : nullptr);
}

// Reads rows [from, to] of a space (at most k_fetch_rows) into the buffers,
// and counts in `changed` those whose version another transaction than
// `writer` wrote. Raises an error for a row that is not a vector of `dim`
// components.
int
read_rows_unguarded(std::int32_t space_id, std::int64_t from, std::int64_t to, std::uint32_t dim,
					std::uint64_t generation, TransactionId writer, float *vectors, engram::core::NodeData *rows,
					TokenBuffer *tokens, std::uint32_t *changed)
{
	static SPIPlanPtr plan = nullptr;
	Oid types[3] = {INT4OID, INT8OID, INT8OID};
	kept_plan(plan,
			  "SELECT " ENGRAM_OBSERVATION_COLUMNS ", xmin FROM engram.observations "
			  "WHERE space_id OPERATOR(pg_catalog.=) $1 AND id OPERATOR(pg_catalog.>=) $2 "
			  "AND id OPERATOR(pg_catalog.<=) $3 ORDER BY id",
			  3, types);
	Datum args[3] = {Int32GetDatum(space_id), Int64GetDatum(from), Int64GetDatum(to)};
	if (SPI_execute_plan(plan, args, nullptr, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read engram.observations");
	const auto n = static_cast<int>(std::min<std::uint64_t>(SPI_processed, k_fetch_rows));
	copy_observations(SPI_tuptable, static_cast<std::uint32_t>(n), dim, generation, vectors, rows, tokens);
	constexpr int xmin_column = 6; // after ENGRAM_OBSERVATION_COLUMNS
	*changed = 0;
	for (int i = 0; i < n; ++i) {
		bool isnull = false;
		const Datum xmin = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, xmin_column, &isnull);
		if (isnull || DatumGetTransactionId(xmin) != writer)
			++*changed;
	}
	SPI_freetuptable(SPI_tuptable);
	return n;
}

// read_rows_unguarded() inside a subtransaction: -1, with the error's message
// in `error`, when the rows cannot be read, so that one space's unreadable
// rows quarantine that space instead of restarting the worker. A cancel is
// passed on (the worker exits and goes on from the record's progress).
int
read_rows(std::int32_t space_id, std::int64_t from, std::int64_t to, std::uint32_t dim, std::uint64_t generation,
		  TransactionId writer, float *vectors, engram::core::NodeData *rows, TokenBuffer *tokens,
		  std::uint32_t *changed, char *error, std::size_t error_size)
{
	ensure_transaction();
	int n = -1;
	auto read = [&] {
		n = read_rows_unguarded(space_id, from, to, dim, generation, writer, vectors, rows, tokens, changed);
	};
	return run_in_subtransaction(read, error, error_size) ? n : -1;
}

// A read-back found rows deleted or changed since the record's commit (see
// the top of the file). Called after the read: every transaction its
// snapshot saw reserved its ring records before the tail read here.
void
open_read_back_hole(SpaceSlot *slot, std::uint64_t generation)
{
	const std::uint64_t tail = shared_ring().tail_position();
	const std::uint64_t until = slot->read_back_until.load(std::memory_order_relaxed);
	if (until == 0 || generation < slot->read_back_from.load(std::memory_order_relaxed))
		slot->read_back_from.store(generation, std::memory_order_relaxed);
	slot->read_back_until.store(std::max(until, tail), std::memory_order_relaxed);
	directory_owe(slot, DUTY_READ_BACK);
}

void
save_progress(std::uint64_t position, std::size_t range, std::int64_t next_id)
{
	EngramShared *s = shared_state();
	s->partial_position.store(0, std::memory_order_release);
	s->partial_range.store(static_cast<std::uint32_t>(range), std::memory_order_relaxed);
	s->partial_next_id.store(next_id, std::memory_order_relaxed);
	s->partial_position.store(position + 1, std::memory_order_release);
}

// Stores the rows of an id-range record chunk by chunk, going on from the
// record's progress if a worker stored part of it before; returns how many
// it stored.
std::uint64_t
store_id_ranges(const engram::core::RecordView &record, const engram::core::BatchView &batch, SpaceSlot *slot, int skip)
{
	EngramShared *s = shared_state();
	const std::uint32_t dim = batch.header.dim;
	const auto chunk =
		static_cast<std::uint32_t>(std::clamp<std::size_t>(k_chunk_bytes / (sizeof(float) * dim), 1, k_fetch_rows));
	std::size_t range = 0;
	std::int64_t from = batch.ranges.empty() ? 0 : batch.ranges[0].first;
	if (s->partial_position.load(std::memory_order_acquire) == record.position + 1) {
		range = s->partial_range.load(std::memory_order_relaxed);
		from = s->partial_next_id.load(std::memory_order_relaxed);
	}
	auto *vectors = static_cast<float *>(palloc(sizeof(float) * dim * chunk));
	auto *rows = static_cast<engram::core::NodeData *>(palloc(sizeof(engram::core::NodeData) * chunk));
	TokenBuffer tokens;
	std::uint64_t stored = 0;
	bool given_up = false;
	for (; range < batch.ranges.size() && !given_up; ++range) {
		const engram::core::IdRange r = batch.ranges[range];
		if (from < r.first)
			from = r.first;
		while (from <= r.last) {
			const std::int64_t to = r.last - from < chunk ? r.last : from + chunk - 1;
			char error[k_cause_text_bytes];
			std::uint32_t changed = 0;
			const int n = read_rows(batch.header.space_id, from, to, dim, record.generation, batch.header.xid, vectors,
									rows, &tokens, &changed, error, sizeof error);
			if (n < 0) {
				quarantine_space(slot, QUARANTINE_UNSTORABLE, space_observations(slot), error);
				given_up = true;
				break;
			}
			if (n < to - from + 1 || changed > 0)
				open_read_back_hole(slot, record.generation);
			engram::core::HnswStatus status = engram::core::HnswStatus::ok;
			const AppendResult result =
				append_rows(slot, vectors, rows, static_cast<std::uint32_t>(n), skip, record.stamp, &status);
			if (result != AppendResult::ok) {
				give_up(slot, result, status);
				given_up = true;
				break;
			}
			stored += static_cast<std::uint64_t>(n);
			save_progress(record.position, range, to + 1);
			if (to == r.last)
				break;
			from = to + 1;
			CHECK_FOR_INTERRUPTS();
		}
		if (range + 1 < batch.ranges.size())
			from = batch.ranges[range + 1].first;
	}
	pfree(vectors);
	pfree(rows);
	if (tokens.tokens != nullptr)
		pfree(tokens.tokens);
	return stored;
}

// Hides the ids of the ranges (of a forgets record, or a chunk of a spilled
// one) from `generation` on, in every graph of the space the load filter does
// not keep it from. Ids the graphs never held (rows the load filter or a
// quarantine kept out) are skipped.
void
forget_ranges(std::span<const engram::core::IdRange> ranges, SpaceSlot *slot, std::uint64_t generation, int skip)
{
	engram::core::IndexSlot &index = directory_index(slot);
	const engram::core::Arena arena = shared_arena();
	bool forgotten = false;
	for (const unsigned which : {0u, 1u}) {
		const std::uint64_t offset = index.graphs[which].load(std::memory_order_acquire);
		if (offset == 0 || static_cast<int>(which) == skip || skip == 2)
			continue;
		engram::core::HnswGraph graph(arena, offset);
		std::uint64_t visited = 0;
		for (const engram::core::IdRange &r : ranges)
			for (std::int64_t id = r.first; id <= r.last; ++id) {
				forgotten = graph.forget(id, generation) == engram::core::ForgetResult::forgotten || forgotten;
				if (++visited % 65536 == 0)
					CHECK_FOR_INTERRUPTS();
			}
	}
	// The erasure clock starts at the first forget since the last compaction.
	std::int64_t none = 0;
	if (forgotten) {
		(void) slot->forgotten_since.compare_exchange_strong(none, GetCurrentTimestamp(), std::memory_order_acq_rel);
		directory_owe(slot, DUTY_COMPACT);
	}
}

// Forgets the ids a transaction spilled to engram._forget_spill for the
// space, chunk by chunk, at the record's generation. A chunk that cannot be
// read quarantines the space (its index would keep rows the table lost).
void
forget_spilled(const engram::core::RecordView &record, const engram::core::BatchView &batch, SpaceSlot *slot, int skip)
{
	auto *ranges =
		static_cast<engram::core::IdRange *>(palloc(sizeof(engram::core::IdRange) * k_forget_spill_chunk_ranges));
	std::int32_t chunk = 0;
	for (;;) {
		char error[k_cause_text_bytes];
		std::size_t n = 0;
		auto read = [&] { n = forget_spill_read(batch.spill, batch.header.space_id, chunk, &chunk, ranges); };
		ensure_transaction();
		if (!run_in_subtransaction(read, error, sizeof error)) {
			quarantine_space(slot, QUARANTINE_UNSTORABLE, space_observations(slot), error);
			break;
		}
		if (n == 0)
			break;
		forget_ranges(std::span<const engram::core::IdRange>(ranges, n), slot, record.generation, skip);
		CHECK_FOR_INTERRUPTS();
	}
	pfree(ranges);
}

// The chunks of a spilled_forgets record go once it is consumed, whatever
// became of it (the deletes are the drain transaction's, which commits after
// the record is popped). One that cannot be deleted waits for the next
// start-up load.
void
clear_spilled(const engram::core::BatchView &batch)
{
	char error[k_cause_text_bytes];
	auto remove = [&] { forget_spill_delete(batch.spill, batch.header.space_id); };
	ensure_transaction();
	if (!run_in_subtransaction(remove, error, sizeof error))
		ereport(WARNING, (errmsg("engram could not delete the forgets of space_id %d it spilled to "
								 "engram._forget_spill: %s",
								 batch.header.space_id, error),
						  errdetail("They stay there until the next start of the server.")));
}

// A record that does not parse: its space, if the header says which, is
// quarantined (its index would miss the rows); otherwise the log says so.
void
drop_malformed(const engram::core::RecordView &record)
{
	engram::core::BatchHeader header{};
	SpaceSlot *slot = nullptr;
	if (record.payload.size() >= sizeof header) {
		std::memcpy(&header, record.payload.data(), sizeof header);
		LWLockAcquire(shared_directory_lock(), LW_SHARED);
		slot = directory_find(header.space_id);
		LWLockRelease(shared_directory_lock());
	}
	if (slot != nullptr && slot->health.load(std::memory_order_acquire) != SPACE_QUARANTINED) {
		quarantine_space(slot, QUARANTINE_UNSTORABLE, space_observations(slot), "the ring record is malformed");
		return;
	}
	if (slot == nullptr)
		ereport(WARNING, (errmsg("engram dropped a malformed ring record at position %llu",
								 static_cast<unsigned long long>(record.position)),
						  errdetail("The record names no space engram knows; its rows, if any, stay in "
									"engram.observations."),
						  errhint("Run engram.rebuild() on spaces whose recalls miss rows.")));
}

} // namespace

QuarantineCause
quarantine_cause_of(AppendResult result)
{
	return result == AppendResult::no_memory ? QUARANTINE_MEMORY_LIMIT
		   : result == AppendResult::reserve ? QUARANTINE_MEMORY_RESERVE
											 : QUARANTINE_UNSTORABLE;
}

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
	const bool homeless = slot == nullptr && directory_homeless(space_id);
	LWLockRelease(shared_directory_lock());
	if (slot != nullptr || homeless)
		return slot;
	ensure_transaction();
	SpaceDefinition definition;
	if (!space_by_id(space_id, &definition, CatalogSnapshot::latest))
		return nullptr;
	LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
	slot = directory_install(definition, InvalidTransactionId);
	if (slot == nullptr)
		directory_mark_homeless(space_id);
	LWLockRelease(shared_directory_lock());
	if (slot == nullptr)
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("space \"%s\" is quarantined", definition.name),
				 errdetail("It has no slot in the space directory: all %u of engram.max_spaces are in use. "
						   "Its observations stay in engram.observations but are not indexed.",
						   directory_capacity()),
				 errhint("Raise engram.max_spaces (takes a restart) or drop unused spaces, then run "
						 "engram.rebuild() on the space.")));
	return slot;
}

bool
space_takes_rows(SpaceSlot *slot)
{
	const auto health = slot->health.load(std::memory_order_acquire);
	if (health == SPACE_QUARANTINED)
		return false;
	engram::core::IndexSlot &index = directory_index(slot);
	if (health == SPACE_LOADING || index.graphs[0].load(std::memory_order_acquire) != 0 ||
		index.graphs[1].load(std::memory_order_acquire) != 0)
		return true;
	std::uint64_t offset = 0;
	if (engram::core::HnswGraph::create(shared_arena(), directory_config(slot), offset) !=
		engram::core::HnswStatus::ok) {
		quarantine_space(slot, QUARANTINE_MEMORY_LIMIT, 0, "no room for its first rows");
		return false;
	}
	engram::core::install(index, index.current.load(std::memory_order_acquire), offset);
	return true;
}

std::uint64_t
space_observations(const SpaceSlot *slot)
{
	const engram::core::IndexSlot &index = directory_index(slot);
	std::uint64_t most = 0;
	for (unsigned which = 0; which < 2; ++which)
		if (const std::uint64_t offset = index.graphs[which].load(std::memory_order_acquire); offset != 0)
			most = std::max(most, engram::core::HnswGraph(shared_arena(), offset).size());
	return most;
}

bool
takes_the_reserve(const SpaceSlot *slot)
{
	const engram::core::Arena arena = shared_arena();
	const double capacity = static_cast<double>(arena.capacity_bytes());
	if (capacity - static_cast<double>(arena.used_bytes()) >= engram_memory_reserve * capacity)
		return false;
	const std::uint64_t mine = space_bytes(*slot);
	bool others = false;
	for (const SpaceSlot &other : directory_slots()) {
		if (&other == slot || other.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE ||
			other.health.load(std::memory_order_acquire) == SPACE_QUARANTINED)
			continue;
		others = true;
		if (space_bytes(other) > mine)
			return false;
	}
	return others;
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
	ereport(WARNING,
			(errcode(ERRCODE_OUT_OF_MEMORY), errmsg("rebuild of space \"%s\" abandoned: %s", slot->name, reason),
			 errhint("Raise engram.memory_limit: a rebuild needs room for a second copy of the index.")));
}

AppendResult
append_rows(SpaceSlot *slot, const float *vectors, const engram::core::NodeData *rows, std::uint32_t n, int skip,
			std::uint32_t stamp, engram::core::HnswStatus *status)
{
	engram::core::IndexSlot &index = directory_index(slot);
	const unsigned current = index.current.load(std::memory_order_acquire);
	const bool only_replacement = slot->health.load(std::memory_order_acquire) == SPACE_LOADING;
	engram::core::Arena arena = shared_arena();
	std::uint64_t tokens = 0;
	for (std::uint32_t i = 0; i < n; ++i)
		tokens += rows[i].tokens.size();
	for (const unsigned which : {current, 1 - current}) {
		const std::uint64_t offset = index.graphs[which].load(std::memory_order_acquire);
		if (offset == 0 || static_cast<int>(which) == skip || skip == 2)
			continue;
		engram::core::HnswGraph graph(arena, offset);
		if (graph.reserve(graph.size() + n, graph.token_slots() + tokens) == engram::core::HnswStatus::ok)
			continue;
		if (which == current || only_replacement)
			return AppendResult::no_memory;
		abandon_rebuild(slot, "engram.memory_limit is exhausted");
	}
	if (takes_the_reserve(slot)) {
		if (only_replacement || index.graphs[1 - current].load(std::memory_order_acquire) == 0)
			return AppendResult::reserve;
		abandon_rebuild(slot, "the replacement index would take engram.memory_reserve");
		if (takes_the_reserve(slot))
			return AppendResult::reserve;
	}
	for (const unsigned which : {current, 1 - current}) {
		const std::uint64_t offset = index.graphs[which].load(std::memory_order_acquire);
		if (offset == 0 || static_cast<int>(which) == skip || skip == 2)
			continue;
		engram::core::HnswGraph graph(arena, offset);
		std::uint32_t first = 0;
		const engram::core::HnswStatus appended =
			graph.append_batch(std::span<const float>(vectors, std::size_t{n} * graph.dim()),
							   std::span<const engram::core::NodeData>(rows, n), first);
		directory_owe(slot, DUTY_LINK);
		if (appended != engram::core::HnswStatus::ok) {
			if (status != nullptr)
				*status = appended;
			return AppendResult::damaged;
		}
		if (stamp != 0 && which == current) {
			graph.stamp_stored(first + n, n, stamp);
			graph.settle_link_stamps(metrics_linked_latency());
		}
	}
	return AppendResult::ok;
}

namespace {

std::int64_t
store_batch(const engram::core::RecordView &record, const std::optional<engram::core::BatchView> &batch)
{
	const std::uint64_t observations = engram::core::observation_count(*batch);
	const int skip = filtered_graphs(record, *batch);
	if (skip >= 0)
		widen_snapshot_gap(batch->header.space_id, record.generation);
	SpaceSlot *slot = skip == 2 ? nullptr : slot_for(batch->header.space_id);
	if (slot == nullptr)
		return 0;
	if (!space_takes_rows(slot)) {
		slot->dropped_observations.fetch_add(observations, std::memory_order_relaxed);
		return 0;
	}
	if (batch->header.dim != slot->dim) {
		char text[k_cause_text_bytes];
		snprintf(text, sizeof text, "a ring record holds vectors of %u dimensions", batch->header.dim);
		quarantine_space(slot, QUARANTINE_UNSTORABLE, space_observations(slot), text);
		return 0;
	}
	if (batch->header.kind == engram::core::BatchKind::forgets) {
		forget_ranges(batch->ranges, slot, record.generation, skip);
		return 0;
	}
	if (batch->header.kind == engram::core::BatchKind::spilled_forgets) {
		forget_spilled(record, *batch, slot, skip);
		return 0;
	}
	if (batch->header.kind != engram::core::BatchKind::vectors)
		return static_cast<std::int64_t>(store_id_ranges(record, *batch, slot, skip));
	const std::uint32_t n = batch->header.count;
	auto *rows = static_cast<engram::core::NodeData *>(palloc(sizeof(engram::core::NodeData) * std::max(n, 1u)));
	std::size_t token = 0;
	for (std::uint32_t i = 0; i < n; ++i) {
		rows[i] = engram::core::NodeData{};
		rows[i].generation = record.generation;
		rows[i].label = batch->ids[i];
		rows[i].confidence = batch->confidences[i];
		rows[i].observed_at = batch->observed_at[i];
		rows[i].tokens = batch->tokens.subspan(token, batch->token_counts[i]);
		token += batch->token_counts[i];
	}
	engram::core::HnswStatus status = engram::core::HnswStatus::ok;
	const AppendResult result = append_rows(slot, batch->vectors.data(), rows, n, skip, record.stamp, &status);
	pfree(rows);
	if (result != AppendResult::ok) {
		give_up(slot, result, status);
		return 0;
	}
	return n;
}

} // namespace

std::int64_t
store_record(const engram::core::RecordView &record)
{
	const std::optional<engram::core::BatchView> batch = engram::core::parse_batch(record.payload);
	if (!batch) {
		drop_malformed(record);
		return 0;
	}
	const std::int64_t stored = store_batch(record, batch);
	if (batch->header.kind == engram::core::BatchKind::spilled_forgets)
		clear_spilled(*batch);
	return stored;
}

void
cover_read_backs(void)
{
	const engram::core::Ring ring = shared_ring();
	const std::uint64_t latest = ring.last_generation();
	const std::uint64_t head = ring.head_position();
	// Shared: a backend installing a space in a free slot sets its gap.
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	auto visit = [latest, head](SpaceSlot &slot) {
		const std::uint64_t until = slot.read_back_until.load(std::memory_order_relaxed);
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE || until == 0)
			return;
		directory_widen_snapshot_gap(&slot, slot.read_back_from.load(std::memory_order_relaxed), latest + 1);
		if (head >= until)
			slot.read_back_until.store(0, std::memory_order_relaxed);
	};
	auto owed = [](const SpaceSlot &slot) {
		return slot.state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE &&
			   slot.read_back_until.load(std::memory_order_relaxed) != 0;
	};
	directory_visit_owing(DUTY_READ_BACK, visit, owed);
	LWLockRelease(shared_directory_lock());
}

void
filter_from_snapshot(Snapshot snapshot)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	load_filter.xmin = snapshot->xmin;
	load_filter.xmax = snapshot->xmax;
	load_filter.xcnt = snapshot->xcnt;
	load_filter.xip =
		static_cast<TransactionId *>(palloc(sizeof(TransactionId) * std::max<std::uint32_t>(snapshot->xcnt, 1)));
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

void
progress_reset(void)
{
	shared_state()->partial_position.store(0, std::memory_order_release);
}
