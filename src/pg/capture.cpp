// Capture: from a committed row of engram.observations to a ring record.
//
// The AFTER INSERT row trigger on engram.observations (every path: observe,
// observe_batch, INSERT, COPY, logical replication apply) queues the row in
// this backend's pending list, tagged with its subtransaction so a rolled
// back savepoint takes its rows with it. Nothing reaches shared memory before
// commit:
//   PRE_COMMIT  plan the transaction's ring records; refuse it at once if they
//               could never fit the ring; admit its rows by the fair-share
//               rule and reserve and fill every record, all or nothing. This
//               is where backpressure acts, so a refusal aborts the
//               transaction and the client sees the error;
//   COMMIT      publish every record under one generation (cannot fail);
//   ABORT       cancel whatever was reserved and take back what was admitted.
// A transaction whose vectors would crowd the ring (over an eighth of it)
// stops keeping vectors and publishes id ranges instead; the worker reads
// those rows back from the table. Backend memory is therefore bounded by the
// ring size plus a few bytes per id range.
//
// The trigger is the door to the ring, so it trusts nothing: it fires only
// AFTER INSERT, UPDATE or DELETE FOR EACH ROW on engram.observations itself,
// reads columns of the expected types only, and checks every row again
// (space, dimension, components, confidence) even though the table's CHECK
// constraints already did, since ring records are trusted by the workers. A
// record holds rows of one space and one dimension, each sized by its own
// rows.
//
// Forgetting. A DELETE queues a forget of the row's id; an UPDATE that
// changes what the index holds (confidence, metadata, observed_at) queues a
// forget of the id and the new version like an insert; an UPDATE of the
// embedding, space_id or id is refused; one of content alone changes nothing
// here. A transaction's forgets are published before its other records, so
// the worker hides the old version before it stores the new one. Rows the
// transaction itself wrote are not forgotten but taken back: a row still
// kept with its vector is marked removed by the (sub)transaction that
// deleted or replaced it (a rollback of that subtransaction restores it), and
// a row kept as an id range needs nothing, since the worker reads the range
// back from the table after the commit and finds what the transaction left.
//
// Forgets too many for the ring. Each forget is an id range of 16 bytes, and
// a delete of rows whose ids are not consecutive (one tenant's rows in a
// shared space) makes one range per row, so a large one could never fit the
// ring. Rather than refusing it, the transaction writes its forgets to
// engram._forget_spill (forget_spill.hpp) once they outgrow an eighth of the
// ring (at most k_forget_spill_chunk_ranges in memory): those of the current
// subtransaction as the trigger adds them, so they roll back with it; any
// still held at pre-commit (added under savepoints that were released) then.
// Each space it spilled into gets one spilled_forgets record, published with
// the others under the transaction's generation, so its rows are hidden at
// exactly that generation. A denser encoding of the ranges (bitmaps of dense
// spans) would only have moved the limit, and nowhere for sparse ids; the
// spill, like id ranges for inserts, leaves only memory and disk to bound a
// delete, and costs nothing to transactions that stay under the threshold.
//
// Each record names the installation whose table its rows are in (the
// database and the table's OID; core/instance_id.hpp), so that the workers
// never store rows of a dropped or foreign installation into the spaces of
// the one they serve. Capture itself refuses in any database other than
// engram.database.
//
// A waiting commit holds no ring record: if the ring has no room for all of
// its records, it cancels those it got and waits with nothing reserved, so it
// never blocks the workers (records are consumed in order) while it waits.
//
// All state is plain data in a memory context of its own, reset at the end
// of every transaction; nothing here owns C++ resources, so an ereport can
// unwind through any of it.
#include "pg/capture.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/observation_batch.hpp"
#include "core/pressure.hpp"
#include "core/ring.hpp"
#include "core/space_backlog.hpp"
#include "pg/forget_spill.hpp"
#include "pg/guc.hpp"
#include "pg/kept_plan.hpp"
#include "pg/instance.hpp"
#include "pg/metadata_tokens.hpp"
#include "pg/metrics.hpp"
#include "pg/pressure.hpp"
#include "pg/quarantine.hpp"
#include "pg/shared.hpp"

#include "pg/catalog.hpp"
#include "pg/postgres.hpp"
#include "pg/privileges.hpp"
#include "pg/vector_input.hpp"

namespace {

struct PendingRow {
	std::int64_t id;
	std::int32_t space_id;
	std::uint32_t dim;
	SubTransactionId subid;
	SubTransactionId removed_by; // the subtransaction that deleted or replaced it, or 0
	float confidence;
	Oid relation;              // the table the row is in: one installation's engram.observations
	std::size_t vector_offset; // into Pending::vectors, in floats
	std::int64_t observed_at;
	std::size_t token_offset; // into Pending::tokens
	std::uint32_t token_count;
};

struct PendingRange {
	std::int32_t space_id;
	std::uint32_t dim;
	SubTransactionId subid;
	Oid relation;
	std::int64_t first;
	std::int64_t last;
};

// One ring record of the transaction: `count` consecutive rows (vectors) or
// ranges (id ranges) of one space and dimension, starting at `first`.
struct PlannedRecord {
	engram::core::BatchKind kind;
	std::int32_t space_id;
	std::uint32_t dim;
	std::uint32_t count;
	Oid relation; // engram.observations of the installation the rows are in
	std::size_t first;
	std::uint64_t rows;
	std::size_t payload_bytes;
};

// A space whose forgets a (sub)transaction wrote to engram._forget_spill.
struct SpilledSpace {
	std::int32_t space_id;
	std::uint32_t dim;
	SubTransactionId subid;
	Oid relation;
};

struct PendingRevision {
	std::int32_t space_id;
	SubTransactionId subid;
};

// A space this transaction counts in its slot's revisions_in_flight: the
// slot it incremented (nullptr if the space had none then), so that the end
// of the transaction takes back exactly what it added.
struct CountedRevision {
	std::int32_t space_id;
	SpaceSlot *slot;
};

// Rows while their vectors fit the budget, then ranges of ids only.
struct Pending {
	MemoryContext context;
	PendingRow *rows;
	std::size_t row_count, row_capacity;
	float *vectors;
	std::size_t float_count, float_capacity;
	std::uint64_t *tokens;
	std::size_t token_count, token_capacity;
	std::size_t removed_rows; // rows with removed_by set
	PendingRange *ranges;
	std::size_t range_count, range_capacity;
	PendingRange *forgets; // ids of earlier transactions' rows this one deleted or replaced
	std::size_t forget_count, forget_capacity;
	SpilledSpace *spills; // the spaces whose other forgets are in engram._forget_spill
	std::size_t spill_count, spill_capacity;
	std::int32_t spill_chunks; // chunks written (numbers are never reused, not even after a rollback)
	std::uint64_t spill_key;   // the transaction's full id, once it spilled
	// Where the forgets of subtransaction tail_subid begin (0: not known).
	SubTransactionId tail_subid;
	std::size_t tail_from;
	// Spaces whose revision row this transaction inserted (with the
	// subtransaction that did), and those it counts in revisions_in_flight.
	PendingRevision *revisions;
	std::size_t revision_count, revision_capacity;
	CountedRevision *revising;
	std::size_t revising_count, revising_capacity;
	bool spilled;
	PlannedRecord *plan; // made at pre-commit
	std::size_t plan_count, plan_capacity;
	engram::core::BacklogDemand *demands; // the plan's rows per space
	std::size_t demand_count, demand_capacity;
	bool admitted;           // the demands are in the spaces' backlog
	std::uint64_t *reserved; // ring positions claimed at pre-commit
	std::size_t reserved_count, reserved_capacity;
	std::uint64_t observations;
	std::int32_t delete_allowed_space;
	std::uint64_t last_generation;
};

Pending pending;

template <typename T>
void
grow(T *&array, std::size_t &capacity, std::size_t needed)
{
	if (needed <= capacity)
		return;
	std::size_t next = std::max<std::size_t>(capacity * 2, 64);
	while (next < needed)
		next *= 2;
	array = array == nullptr ? static_cast<T *>(MemoryContextAllocHuge(pending.context, next * sizeof(T)))
							 : static_cast<T *>(repalloc_huge(array, next * sizeof(T)));
	capacity = next;
}

void
pending_reset(void)
{
	if (pending.context != nullptr)
		MemoryContextReset(pending.context);
	const std::uint64_t last = pending.last_generation;
	MemoryContext context = pending.context;
	pending = Pending{};
	pending.context = context;
	pending.last_generation = last;
}

std::size_t
spill_threshold_bytes(void)
{
	return static_cast<std::size_t>(engram_ring_size_kb) * 1024 / 8;
}

std::size_t
record_cells(std::size_t payload_bytes)
{
	return (engram::core::k_ring_record_header_bytes + payload_bytes + engram::core::k_ring_cell_bytes - 1) /
		   engram::core::k_ring_cell_bytes;
}

// The most of the ring one transaction may hold. Its records are reserved
// together and stay reserved until it commits, while the ring also carries
// every other transaction's records: more than half of it could only be had
// by waiting for the ring to empty.
std::size_t
transaction_limit_cells(void)
{
	return static_cast<std::size_t>(engram_ring_size_kb) * 1024 / engram::core::k_ring_cell_bytes / 2;
}

// Forgets kept in memory (and carried in forgets records) before the current
// subtransaction's go to engram._forget_spill: an eighth of the ring, like
// the vectors of inserted rows, and at most one chunk.
std::size_t
forget_keep_limit(void)
{
	return std::min(spill_threshold_bytes() / sizeof(engram::core::IdRange), k_forget_spill_chunk_ranges);
}

[[noreturn]] void
report_too_large(std::uint64_t observations, std::size_t cells, const char *counted)
{
	const std::size_t ring_bytes = static_cast<std::size_t>(engram_ring_size_kb) * 1024;
	metrics_count_refusal(REFUSED_TOO_LARGE);
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("transaction is too large for the engram ingest pipeline"),
			 errdetail("Its %llu observations need %s%zu bytes of ring records, more than half of engram.ring_size "
					   "(%zu bytes): the most one transaction may hold at once.",
					   static_cast<unsigned long long>(observations), counted, cells * engram::core::k_ring_cell_bytes,
					   ring_bytes),
			 errhint("Split it into smaller transactions, insert each space's rows as runs of consecutive ids, or "
					 "raise engram.ring_size.")));
}

// Adds an id to a list of ranges (the rows kept as ranges, or the forgets),
// extending the last range when the id follows it.
void
append_range_to(PendingRange *&ranges, std::size_t &count, std::size_t &capacity, std::int32_t space_id,
				std::uint32_t dim, SubTransactionId subid, Oid relation, std::int64_t id)
{
	if (count > 0) {
		PendingRange &last = ranges[count - 1];
		if (last.space_id == space_id && last.subid == subid && last.relation == relation && last.dim == dim &&
			last.last + 1 == id) {
			last.last = id;
			return;
		}
	}
	grow(ranges, capacity, count + 1);
	ranges[count++] = PendingRange{space_id, dim, subid, relation, id, id};
}

void
append_range(std::int32_t space_id, std::uint32_t dim, SubTransactionId subid, Oid relation, std::int64_t id)
{
	// Each range takes 16 bytes of a record: refused as soon as the ranges
	// alone cannot fit, rather than after the rest of a long COPY. Forgets
	// count only as far as they stay in the ring (the rest is spilled).
	const std::size_t all = pending.range_count + std::min(pending.forget_count, forget_keep_limit()) + 1;
	const std::size_t cells = record_cells(sizeof(engram::core::IdRange) * all);
	if (cells > transaction_limit_cells())
		report_too_large(pending.observations + 1, cells, psprintf("at least %zu id ranges, hence ", all));
	append_range_to(pending.ranges, pending.range_count, pending.range_capacity, space_id, dim, subid, relation, id);
}

// A row of engram.revisions for the space, once per transaction (again
// after a rollback to a savepoint took it back), inserted as the tables'
// owner; and the space counted in its slot's revisions_in_flight until the
// transaction ends.
void
note_revision(std::int32_t space_id)
{
	for (std::size_t i = 0; i < pending.revision_count; ++i)
		if (pending.revisions[i].space_id == space_id)
			return;
	static SPIPlanPtr plan = nullptr;
	const SavedUser saved = elevate_to_extension_owner();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	Oid type = INT4OID;
	kept_plan(plan, "INSERT INTO engram.revisions (space_id) VALUES ($1)", 1, &type);
	Datum arg = Int32GetDatum(space_id);
	if (SPI_execute_plan(plan, &arg, nullptr, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into engram.revisions");
	SPI_finish();
	restore_user(saved);
	grow(pending.revisions, pending.revision_capacity, pending.revision_count + 1);
	pending.revisions[pending.revision_count++] = PendingRevision{space_id, GetCurrentSubTransactionId()};
	for (std::size_t i = 0; i < pending.revising_count; ++i)
		if (pending.revising[i].space_id == space_id)
			return;
	grow(pending.revising, pending.revising_capacity, pending.revising_count + 1);
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	SpaceSlot *slot = directory_find(space_id);
	if (slot != nullptr)
		slot->file.revisions_in_flight.fetch_add(1, std::memory_order_seq_cst);
	LWLockRelease(shared_directory_lock());
	pending.revising[pending.revising_count++] = CountedRevision{space_id, slot};
}

// The transaction ends: its revisions are no longer in flight, and a
// committed one records its generation first.
void
finish_revisions(std::uint64_t generation)
{
	if (pending.revising_count == 0)
		return;
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	for (std::size_t i = 0; i < pending.revising_count; ++i) {
		SpaceSlot *slot = pending.revising[i].slot;
		// Only the slot it counted in, and only while that slot still
		// serves the space (space ids are never reused; a slot that was
		// freed and installed again for another space starts from zero).
		if (slot != nullptr && slot->state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE &&
			slot->space_id == pending.revising[i].space_id) {
			std::uint64_t seen = slot->file.revision_generation.load(std::memory_order_acquire);
			while (generation > seen &&
				   !slot->file.revision_generation.compare_exchange_weak(seen, generation, std::memory_order_acq_rel))
				;
			// Never below zero: a slot installed again (a reinstall reuses
			// space ids) starts from zero without this transaction.
			std::uint32_t count = slot->file.revisions_in_flight.load(std::memory_order_seq_cst);
			while (count > 0 &&
				   !slot->file.revisions_in_flight.compare_exchange_weak(count, count - 1, std::memory_order_seq_cst))
				;
		}
	}
	LWLockRelease(shared_directory_lock());
	pending.revising_count = 0;
}

// Writes the forgets from `from` on, all of the current subtransaction, to
// engram._forget_spill in chunks of one space each, and keeps only those
// before `from` in memory.
void
spill_forgets(std::size_t from)
{
	const SubTransactionId subid = GetCurrentSubTransactionId();
	if (pending.spill_key == 0)
		pending.spill_key = U64FromFullTransactionId(GetTopFullTransactionId());
	auto *chunk = static_cast<engram::core::IdRange *>(
		palloc(sizeof(engram::core::IdRange) * std::min(pending.forget_count - from, k_forget_spill_chunk_ranges)));
	for (std::size_t i = from; i < pending.forget_count;) {
		const PendingRange &first = pending.forgets[i];
		std::size_t n = 0;
		for (; i < pending.forget_count && n < k_forget_spill_chunk_ranges &&
			   pending.forgets[i].space_id == first.space_id && pending.forgets[i].dim == first.dim &&
			   pending.forgets[i].relation == first.relation;
			 ++i)
			chunk[n++] = {pending.forgets[i].first, pending.forgets[i].last};
		forget_spill_write(pending.spill_key, first.space_id, ++pending.spill_chunks, std::span(chunk, n));
		const SpilledSpace *last = pending.spill_count > 0 ? &pending.spills[pending.spill_count - 1] : nullptr;
		if (last == nullptr || last->space_id != first.space_id || last->dim != first.dim ||
			last->relation != first.relation || last->subid != subid) {
			grow(pending.spills, pending.spill_capacity, pending.spill_count + 1);
			pending.spills[pending.spill_count++] = SpilledSpace{first.space_id, first.dim, subid, first.relation};
		}
		CHECK_FOR_INTERRUPTS();
	}
	pfree(chunk);
	pending.forget_count = from;
}

void
append_forget(std::int32_t space_id, std::uint32_t dim, Oid relation, std::int64_t id)
{
	note_revision(space_id);
	const SubTransactionId subid = GetCurrentSubTransactionId();
	append_range_to(pending.forgets, pending.forget_count, pending.forget_capacity, space_id, dim, subid, relation, id);
	if (pending.forget_count < forget_keep_limit())
		return;
	// The current subtransaction's forgets are the tail of the list (see
	// subxact_abort); only they may be written now, in it. Where the tail
	// begins is remembered until a subtransaction ends.
	if (pending.tail_subid != subid) {
		pending.tail_from = pending.forget_count;
		while (pending.tail_from > 0 && pending.forgets[pending.tail_from - 1].subid == subid)
			--pending.tail_from;
		pending.tail_subid = subid;
	}
	if (pending.forget_count - pending.tail_from >= forget_keep_limit())
		spill_forgets(pending.tail_from);
}

// Whether rows[i] repeats the id of an earlier row (an updated version).
bool *
repeated_ids(void)
{
	auto *order = static_cast<std::size_t *>(palloc(sizeof(std::size_t) * std::max<std::size_t>(pending.row_count, 1)));
	auto *repeated = static_cast<bool *>(palloc0(sizeof(bool) * std::max<std::size_t>(pending.row_count, 1)));
	for (std::size_t i = 0; i < pending.row_count; ++i)
		order[i] = i;
	std::stable_sort(order, order + pending.row_count,
					 [](std::size_t a, std::size_t b) { return pending.rows[a].id < pending.rows[b].id; });
	for (std::size_t i = 1; i < pending.row_count; ++i)
		if (pending.rows[order[i]].id == pending.rows[order[i - 1]].id)
			repeated[order[i]] = true;
	pfree(order);
	return repeated;
}

// Switches the transaction to id ranges once its vectors outgrow the budget.
// Every row becomes its id once, removed or not, tied to the subtransaction
// that inserted it: the worker reads back whatever version the transaction
// left, if any.
void
spill_rows_to_ranges(void)
{
	bool *repeated = repeated_ids();
	for (std::size_t i = 0; i < pending.row_count; ++i) {
		const PendingRow &r = pending.rows[i];
		if (!repeated[i])
			append_range(r.space_id, r.dim, r.subid, r.relation, r.id);
	}
	pfree(repeated);
	if (pending.rows != nullptr) // nothing kept yet when the first row alone outgrows the budget
		pfree(pending.rows);
	pending.rows = nullptr;
	pending.row_count = pending.row_capacity = 0;
	if (pending.vectors != nullptr)
		pfree(pending.vectors);
	pending.vectors = nullptr;
	pending.float_count = pending.float_capacity = 0;
	if (pending.tokens != nullptr)
		pfree(pending.tokens);
	pending.tokens = nullptr;
	pending.token_count = pending.token_capacity = 0;
	pending.removed_rows = 0;
	pending.spilled = true;
	// Every observation is an id of a range now (rows taken back included:
	// the worker reads back whatever the transaction left).
	pending.observations = 0;
	for (std::size_t i = 0; i < pending.range_count; ++i)
		pending.observations += static_cast<std::uint64_t>(pending.ranges[i].last - pending.ranges[i].first + 1);
}

void
capture_row(std::int64_t id, std::int32_t space_id, Oid relation, std::span<const float> vector, float confidence,
			std::int64_t observed_at, std::span<const std::uint64_t> tokens)
{
	const SubTransactionId subid = GetCurrentSubTransactionId();
	const auto dim = static_cast<std::uint32_t>(vector.size());
	const auto token_count = static_cast<std::uint32_t>(tokens.size());
	// The budget counts what the rows take in vectors records: each row's
	// fixed part, then its vector and tokens.
	const std::size_t kept = pending.row_count * engram::core::vectors_row_bytes(0, 0) +
							 pending.float_count * sizeof(float) + pending.token_count * sizeof(std::uint64_t);
	if (!pending.spilled && kept + engram::core::vectors_row_bytes(dim, token_count) > spill_threshold_bytes())
		spill_rows_to_ranges();
	if (pending.spilled) {
		append_range(space_id, dim, subid, relation, id);
	} else {
		grow(pending.rows, pending.row_capacity, pending.row_count + 1);
		grow(pending.vectors, pending.float_capacity, pending.float_count + dim);
		grow(pending.tokens, pending.token_capacity, pending.token_count + token_count);
		std::memcpy(pending.vectors + pending.float_count, vector.data(), dim * sizeof(float));
		if (token_count > 0)
			std::memcpy(pending.tokens + pending.token_count, tokens.data(), token_count * sizeof(std::uint64_t));
		pending.rows[pending.row_count++] = PendingRow{id,          space_id,
													   dim,         subid,
													   0,           confidence,
													   relation,    pending.float_count,
													   observed_at, pending.token_count,
													   token_count};
		pending.float_count += dim;
		pending.token_count += token_count;
	}
	// Counted once held, so a row refused above leaves the count as it was.
	pending.observations++;
}

// A row this transaction wrote was deleted or replaced by it: a kept row is
// marked removed by the current subtransaction (the newest live one with that
// id); a row kept as a range needs nothing (see the top of the file).
void
take_back_row(std::int64_t id)
{
	if (pending.spilled)
		return;
	for (std::size_t i = pending.row_count; i > 0; --i) {
		PendingRow &row = pending.rows[i - 1];
		if (row.id == id && row.removed_by == 0) {
			row.removed_by = GetCurrentSubTransactionId();
			pending.removed_rows++;
			pending.observations--;
			return;
		}
	}
}

// Rows and ranges of a subtransaction always form the tail of their lists,
// because a subtransaction's children are folded into it when they commit.
// Removal marks are not a tail: they are looked up in every row, but only
// while some row carries one.
void
subxact_abort(SubTransactionId subid)
{
	while (pending.row_count > 0 && pending.rows[pending.row_count - 1].subid == subid) {
		const PendingRow &row = pending.rows[--pending.row_count];
		pending.float_count = row.vector_offset;
		pending.token_count = row.token_offset;
		if (row.removed_by != 0)
			pending.removed_rows--;
		else
			pending.observations--;
	}
	while (pending.range_count > 0 && pending.ranges[pending.range_count - 1].subid == subid) {
		const PendingRange &r = pending.ranges[--pending.range_count];
		pending.observations -= static_cast<std::uint64_t>(r.last - r.first + 1);
	}
	while (pending.forget_count > 0 && pending.forgets[pending.forget_count - 1].subid == subid)
		pending.forget_count--;
	// Its chunks in engram._forget_spill roll back with it.
	while (pending.spill_count > 0 && pending.spills[pending.spill_count - 1].subid == subid)
		pending.spill_count--;
	pending.tail_subid = 0;
	while (pending.revision_count > 0 && pending.revisions[pending.revision_count - 1].subid == subid)
		pending.revision_count--;
	for (std::size_t i = 0; pending.removed_rows > 0 && i < pending.row_count; ++i)
		if (pending.rows[i].removed_by == subid) {
			pending.rows[i].removed_by = 0;
			pending.removed_rows--;
			pending.observations++;
		}
}

void
subxact_commit(SubTransactionId subid, SubTransactionId parent)
{
	for (std::size_t i = pending.row_count; i > 0 && pending.rows[i - 1].subid == subid; --i)
		pending.rows[i - 1].subid = parent;
	for (std::size_t i = pending.range_count; i > 0 && pending.ranges[i - 1].subid == subid; --i)
		pending.ranges[i - 1].subid = parent;
	for (std::size_t i = pending.forget_count; i > 0 && pending.forgets[i - 1].subid == subid; --i)
		pending.forgets[i - 1].subid = parent;
	for (std::size_t i = pending.spill_count; i > 0 && pending.spills[i - 1].subid == subid; --i)
		pending.spills[i - 1].subid = parent;
	pending.tail_subid = 0;
	for (std::size_t i = pending.revision_count; i > 0 && pending.revisions[i - 1].subid == subid; --i)
		pending.revisions[i - 1].subid = parent;
	if (pending.removed_rows > 0)
		for (std::size_t i = 0; i < pending.row_count; ++i)
			if (pending.rows[i].removed_by == subid)
				pending.rows[i].removed_by = parent;
}

// --- pre-commit: plan, check, admit, reserve ----------------------------------

void
plan_record(const PlannedRecord &record)
{
	grow(pending.plan, pending.plan_capacity, pending.plan_count + 1);
	pending.plan[pending.plan_count++] = record;
}

// Drops the rows the transaction took back, closing up their vectors and
// tokens, so that a record's rows are consecutive (no subtransaction event
// follows pre-commit).
void
drop_removed_rows(void)
{
	if (pending.removed_rows == 0)
		return;
	std::size_t rows = 0, floats = 0, tokens = 0;
	for (std::size_t i = 0; i < pending.row_count; ++i) {
		PendingRow row = pending.rows[i];
		if (row.removed_by != 0)
			continue;
		std::memmove(pending.vectors + floats, pending.vectors + row.vector_offset, row.dim * sizeof(float));
		if (row.token_count > 0)
			std::memmove(pending.tokens + tokens, pending.tokens + row.token_offset,
						 row.token_count * sizeof(std::uint64_t));
		row.vector_offset = floats;
		row.token_offset = tokens;
		floats += row.dim;
		tokens += row.token_count;
		pending.rows[rows++] = row;
	}
	pending.row_count = rows;
	pending.float_count = floats;
	pending.token_count = tokens;
	pending.removed_rows = 0;
}

// Id-range and forget records: up to 4096 ranges of one space each.
void
plan_ranges(engram::core::BatchKind kind, const PendingRange *ranges, std::size_t range_count)
{
	constexpr std::uint32_t k_ranges_per_record = 4096;
	const bool counted = kind == engram::core::BatchKind::id_ranges;
	for (std::size_t i = 0; i < range_count;) {
		const PendingRange &first = ranges[i];
		std::size_t end = i + 1;
		std::uint64_t rows = counted ? static_cast<std::uint64_t>(first.last - first.first + 1) : 0;
		while (end < range_count && end - i < k_ranges_per_record && ranges[end].space_id == first.space_id &&
			   ranges[end].dim == first.dim && ranges[end].relation == first.relation) {
			if (counted)
				rows += static_cast<std::uint64_t>(ranges[end].last - ranges[end].first + 1);
			++end;
		}
		const auto count = static_cast<std::uint32_t>(end - i);
		plan_record(PlannedRecord{kind, first.space_id, first.dim, count, first.relation, i, rows,
								  engram::core::ranges_payload_bytes(count)});
		i = end;
	}
}

// One spilled_forgets record for each space (dimension and table) the
// transaction spilled forgets into, whichever subtransactions did.
void
plan_spilled_forgets(void)
{
	for (std::size_t i = 0; i < pending.spill_count; ++i) {
		const SpilledSpace &s = pending.spills[i];
		bool planned = false;
		for (std::size_t j = 0; j < i && !planned; ++j)
			planned = pending.spills[j].space_id == s.space_id && pending.spills[j].dim == s.dim &&
					  pending.spills[j].relation == s.relation;
		if (!planned)
			plan_record(PlannedRecord{engram::core::BatchKind::spilled_forgets, s.space_id, s.dim, 0, s.relation, i, 0,
									  engram::core::spilled_forgets_payload_bytes()});
	}
}

// Forgets come first, so the worker hides old versions before it stores the
// new ones. Vector records hold consecutive rows of one space and dimension,
// as many as fit a payload.
void
plan_records(std::size_t max_payload)
{
	drop_removed_rows();
	plan_ranges(engram::core::BatchKind::forgets, pending.forgets, pending.forget_count);
	plan_spilled_forgets();
	for (std::size_t i = 0; i < pending.row_count;) {
		const PendingRow &first = pending.rows[i];
		std::size_t end = i + 1;
		std::uint64_t tokens = first.token_count;
		while (end < pending.row_count && pending.rows[end].space_id == first.space_id &&
			   pending.rows[end].dim == first.dim && pending.rows[end].relation == first.relation &&
			   engram::core::vectors_payload_bytes(static_cast<std::uint32_t>(end - i + 1), first.dim,
												   tokens + pending.rows[end].token_count) <= max_payload) {
			tokens += pending.rows[end].token_count;
			++end;
		}
		const auto count = static_cast<std::uint32_t>(end - i);
		plan_record(PlannedRecord{engram::core::BatchKind::vectors, first.space_id, first.dim, count, first.relation, i,
								  count, engram::core::vectors_payload_bytes(count, first.dim, tokens)});
		i = end;
	}
	plan_ranges(engram::core::BatchKind::id_ranges, pending.ranges, pending.range_count);
}

// The plan's rows per space: what admission weighs and the backlog counts.
void
plan_demands(void)
{
	grow(pending.demands, pending.demand_capacity, pending.plan_count);
	for (std::size_t i = 0; i < pending.plan_count; ++i) {
		const PlannedRecord &r = pending.plan[i];
		pending.demands[i] = engram::core::BacklogDemand{r.space_id, r.dim, r.rows};
	}
	auto *begin = pending.demands, *end = pending.demands + pending.plan_count;
	std::sort(begin, end, [](const auto &a, const auto &b) { return a.space_id < b.space_id; });
	std::size_t n = 0;
	for (auto *d = begin; d != end; ++d) {
		if (n > 0 && pending.demands[n - 1].space_id == d->space_id)
			pending.demands[n - 1].rows += d->rows;
		else
			pending.demands[n++] = *d;
	}
	pending.demand_count = n;
}

engram::core::InstanceId
instance_of(Oid relation)
{
	return {MyDatabaseId, relation};
}

void
fill_record(const PlannedRecord &record, std::span<std::byte> payload, std::uint32_t xid)
{
	if (record.kind == engram::core::BatchKind::spilled_forgets) {
		engram::core::write_spilled_forgets(payload, record.space_id, record.dim, pending.spill_key, xid,
											instance_of(record.relation));
		return;
	}
	if (record.kind != engram::core::BatchKind::vectors) {
		const PendingRange *ranges = record.kind == engram::core::BatchKind::forgets ? pending.forgets : pending.ranges;
		std::span<engram::core::IdRange> out = engram::core::write_ranges_header(payload, record.kind, record.space_id,
																				 record.dim, record.count, xid,
																				 instance_of(record.relation));
		for (std::uint32_t k = 0; k < record.count; ++k)
			out[k] = {ranges[record.first + k].first, ranges[record.first + k].last};
		return;
	}
	const PendingRow &first = pending.rows[record.first];
	const PendingRow &last = pending.rows[record.first + record.count - 1];
	const std::size_t tokens = last.token_offset + last.token_count - first.token_offset;
	engram::core::VectorsSections s = engram::core::write_vectors_header(payload, record.space_id, record.dim,
																		 record.count, tokens, xid,
																		 instance_of(record.relation));
	for (std::uint32_t k = 0; k < record.count; ++k) {
		const PendingRow &row = pending.rows[record.first + k];
		s.ids[k] = row.id;
		s.observed_at[k] = row.observed_at;
		s.confidences[k] = row.confidence;
		s.token_counts[k] = row.token_count;
	}
	if (tokens > 0)
		std::memcpy(s.tokens.data(), pending.tokens + first.token_offset, tokens * sizeof(std::uint64_t));
	std::memcpy(s.vectors.data(), pending.vectors + first.vector_offset,
				std::size_t{record.count} * record.dim * sizeof(float));
}

// Reserves and fills every planned record; false, with the records it got
// still reserved, when the ring has no room for one of them.
bool
reserve_planned(engram::core::Ring &ring, std::uint32_t xid)
{
	// Room for every position first: nothing may fail between a reservation
	// and remembering it, or the record would stay reserved for good.
	grow(pending.reserved, pending.reserved_capacity, pending.plan_count);
	for (std::size_t i = 0; i < pending.plan_count; ++i) {
		const PlannedRecord &record = pending.plan[i];
		engram::core::Reservation r = ring.try_reserve(record.payload_bytes, static_cast<std::uint32_t>(MyProcPid));
		if (r.status == engram::core::ReserveStatus::full)
			return false;
		if (r.status == engram::core::ReserveStatus::too_large)
			elog(ERROR, "ring record of %zu bytes exceeds the ring", record.payload_bytes);
		pending.reserved[pending.reserved_count++] = r.position;
		fill_record(record, r.payload, xid);
	}
	return true;
}

// Cancels the records reserved so far and takes the rows out of the backlog.
void
release_reservations(void)
{
	if (pending.reserved_count > 0) {
		engram::core::Ring ring = shared_ring();
		for (std::size_t i = 0; i < pending.reserved_count; ++i)
			ring.cancel(pending.reserved[i]);
		pending.reserved_count = 0;
	}
	if (pending.admitted)
		pressure_withdraw(std::span(pending.demands, pending.demand_count));
	pending.admitted = false;
}

enum class Holdback { share, ring, room };

[[noreturn]] void
report_overload(const engram::core::AdmitVerdict &verdict, Holdback why, bool timed_out)
{
	const engram::core::PressureReport report = pressure_refusal_report(verdict);
	const int wait_ms = guc_overload_wait_ms();
	const char *waited = !timed_out ? ""
						 : wait_ms < engram_overload_timeout_ms
							 ? psprintf("; it did not drain within %d ms (engram.overload_timeout, %d ms, is capped by "
										"engram.max_overload_timeout)",
										wait_ms, engram_overload_timeout_ms)
							 : psprintf("; it did not drain within %d ms", wait_ms);
	const double fill = engram::core::pipeline_fill(verdict.pipeline);
	// Memory full holds back every space, whatever their shares: say so.
	if (why == Holdback::share && engram::core::memory_share(verdict.pipeline) >= engram_pressure_overloaded) {
		metrics_count_refusal(REFUSED_MEMORY);
		const engram::core::Arena arena = shared_arena();
		const std::size_t used = arena.used_bytes(), capacity = arena.capacity_bytes();
		ereport(ERROR,
				(errcode(ERRCODE_ENGRAM_OVERLOADED), errmsg("engram ingest pipeline is overloaded"),
				 errdetail("The indexes use %.0f%% of engram.memory_limit (%zu of %zu bytes), so the workers cannot "
						   "store more observations%s.",
						   100.0 * static_cast<double>(used) / static_cast<double>(capacity), used, capacity, waited),
				 errhint("Raise engram.memory_limit (takes a restart), or drop spaces that are no longer needed.")));
	}
	metrics_count_refusal(why == Holdback::share  ? REFUSED_SPACE_SHARE
						  : why == Holdback::ring ? REFUSED_RING
												  : REFUSED_SPACES);
	const char *where = "";
	if (why == Holdback::share) {
		const engram::core::SpaceLoad load = shared_backlog().space(verdict.space_id);
		const std::uint32_t spaces = std::max<std::uint32_t>(verdict.pipeline.active_spaces, 1);
		const double own =
			static_cast<double>((load.queued_rows + load.unlinked_rows) * engram::core::row_backlog_bytes(load.dim));
		where = psprintf(", and space_id %d holds %.0f%% of its share of it (1/%u of the capacity: one share for "
						 "each space with work waiting)",
						 verdict.space_id, 100.0 * own * spaces / verdict.pipeline.capacity, spaces);
	} else if (why == Holdback::ring) {
		std::size_t bytes = 0;
		for (std::size_t i = 0; i < pending.plan_count; ++i)
			bytes += record_cells(pending.plan[i].payload_bytes) * engram::core::k_ring_cell_bytes;
		where = psprintf(", and the ring has no room for this transaction's %zu bytes of records", bytes);
	} else {
		where = psprintf(", and more spaces have work waiting than engram follows at once (%u)",
						 shared_backlog().capacity() / 4 * 3);
	}
	ereport(ERROR,
			(errcode(ERRCODE_ENGRAM_OVERLOADED), errmsg("engram ingest pipeline is overloaded"),
			 errdetail("The pipeline is %.0f%% full (overloaded at %.0f%%)%s%s.", fill * 100.0,
					   engram_pressure_overloaded * 100.0, where, waited),
			 errhint(why == Holdback::share
						 ? "Retry after %d ms with batches of %d; commits into spaces within their share go on. Or "
						   "raise engram.ring_size, engram.workers or engram.overload_timeout."
						 : "Retry after %d ms with batches of %d, or raise engram.ring_size, engram.workers or "
						   "engram.overload_timeout.",
					 report.retry_after_ms, report.suggested_batch)));
}

// statement_timeout is not armed while a transaction commits (PostgreSQL
// disarms it before committing), so a wait at commit applies it itself.
void
check_statement_timeout(TimestampTz now)
{
	if (StatementTimeout > 0 &&
		TimestampDifferenceExceeds(GetCurrentStatementStartTimestamp(), now, StatementTimeout)) {
		metrics_count_refusal(REFUSED_STATEMENT_TIMEOUT);
		ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED), errmsg("canceling statement due to statement timeout"),
						errdetail("The commit was waiting for room in the engram ingest pipeline.")));
	}
}

// Admits the transaction's rows and reserves its records, applying the
// overload policy while a space it writes to is over its share, memory is
// full, or the ring has no room for all of its records.
void
admit_and_reserve(engram::core::Ring &ring, std::uint32_t xid)
{
	const std::span<const engram::core::BacklogDemand> demands(pending.demands, pending.demand_count);
	const TimestampTz started = GetCurrentTimestamp();
	bool held_back = false;
	for (;;) {
		engram::core::AdmitVerdict verdict = pressure_admit(demands);
		Holdback why = verdict.status == engram::core::AdmitStatus::no_room ? Holdback::room : Holdback::share;
		if (verdict.status == engram::core::AdmitStatus::admitted) {
			pending.admitted = true;
			if (reserve_planned(ring, xid))
				return;
			release_reservations();
			why = Holdback::ring;
		}
		if (!held_back)
			metrics_count_backpressure();
		held_back = true;
		if (engram_overload_policy == ENGRAM_POLICY_ERROR)
			report_overload(verdict, why, false);
		const TimestampTz now = GetCurrentTimestamp();
		if (TimestampDifferenceExceeds(started, now, guc_overload_wait_ms()))
			report_overload(verdict, why, true);
		check_statement_timeout(now);
		shared_wake_workers();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

bool
is_forget(engram::core::BatchKind kind)
{
	return kind == engram::core::BatchKind::forgets || kind == engram::core::BatchKind::spilled_forgets;
}

// What is left of a limit once forgets are spilled: every space whose rows a
// transaction deletes or updates takes at least one record.
[[noreturn]] void
report_too_many_spaces_forgotten(std::size_t cells)
{
	metrics_count_refusal(REFUSED_TOO_LARGE);
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("transaction is too large for the engram ingest pipeline"),
			 errdetail_plural("Its deletes and updates of observations in %zu space need %zu bytes of ring records, "
							  "more than half of engram.ring_size (%zu bytes): the most one transaction may hold at "
							  "once.",
							  "Its deletes and updates of observations in %zu spaces need %zu bytes of ring records "
							  "(at least one record for each space), more than half of engram.ring_size (%zu "
							  "bytes): the most one transaction may hold at once.",
							  pending.revision_count, pending.revision_count, cells * engram::core::k_ring_cell_bytes,
							  static_cast<std::size_t>(engram_ring_size_kb) * 1024),
			 errhint("Delete or update the observations of fewer spaces per transaction, or raise engram.ring_size.")));
}

void
pre_commit(void)
{
	if (pending.observations == 0 && pending.forget_count == 0 && pending.spill_count == 0)
		return;
	// Every subtransaction has ended: what the released ones left in memory
	// beyond the limit is the top transaction's to write now (no statement
	// runs at pre-commit, so the write takes a snapshot of its own).
	if (pending.forget_count > forget_keep_limit()) {
		PushActiveSnapshot(GetTransactionSnapshot());
		spill_forgets(0);
		PopActiveSnapshot();
	}
	engram::core::Ring ring = shared_ring();
	plan_records(std::min<std::size_t>(ring.max_payload_bytes(), 1 << 20));
	std::size_t cells = 0, forget_cells = 0;
	for (std::size_t i = 0; i < pending.plan_count; ++i) {
		cells += record_cells(pending.plan[i].payload_bytes);
		if (is_forget(pending.plan[i].kind))
			forget_cells += record_cells(pending.plan[i].payload_bytes);
	}
	if (cells > transaction_limit_cells()) {
		if (forget_cells * 2 > cells)
			report_too_many_spaces_forgotten(cells);
		report_too_large(pending.observations, cells, "");
	}
	// Forgetting is never held back by a space's state: rows leave the table
	// whatever the index can take.
	for (std::size_t i = 0; i < pending.plan_count; ++i)
		if (!is_forget(pending.plan[i].kind))
			space_require_committable(pending.plan[i].space_id);
	plan_demands();
	// The generation continues from the WAL position so it keeps growing
	// across restarts (every commit writes WAL, so it never overtakes it).
	if (ring.last_generation() == 0)
		ring.seed_generation(GetXLogInsertRecPtr());
	admit_and_reserve(ring, static_cast<std::uint32_t>(GetTopTransactionId()));
}

void
commit(void)
{
	if (pending.reserved_count > 0) {
		engram::core::Ring ring = shared_ring();
		const std::uint64_t generation =
			ring.commit(std::span(pending.reserved, pending.reserved_count), metrics_commit_stamp());
		if (generation == 0)
			elog(WARNING,
				 "engram lost track of %zu ring records of this transaction; the workers will "
				 "pick the rows up at their next reload",
				 pending.reserved_count);
		else {
			pending.last_generation = generation;
			metrics_count_committed(pending.observations);
		}
		shared_wake_workers();
	}
	finish_revisions(std::max(pending.last_generation, shared_ring().last_generation()));
	// The admitted rows are the workers' now: they take them off the backlog
	// as they pop the records.
	pending_reset();
}

void
abort_transaction(void)
{
	release_reservations();
	finish_revisions(0);
	pending_reset();
}

void
on_xact(XactEvent event, void *)
{
	guarded([event] {
		switch (event) {
		case XACT_EVENT_PRE_COMMIT:
			pre_commit();
			break;
		case XACT_EVENT_COMMIT:
			commit();
			break;
		case XACT_EVENT_ABORT:
			abort_transaction();
			break;
		case XACT_EVENT_PRE_PREPARE:
			// Observations are published from this backend's memory at commit,
			// but COMMIT PREPARED may run in any session, after a restart even.
			// Refused here, the transaction aborts and the abort resets it all.
			if (pending.observations > 0)
				ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
								errmsg("cannot prepare a transaction that observed into engram"),
								errdetail("Its %llu observations would be published by this session at commit, "
										  "which a prepared transaction leaves to COMMIT PREPARED.",
										  static_cast<unsigned long long>(pending.observations)),
								errhint("Commit observations with COMMIT rather than PREPARE TRANSACTION.")));
			if (pending.forget_count > 0 || pending.spill_count > 0)
				ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
								errmsg("cannot prepare a transaction that deleted or updated engram observations"),
								errdetail("Its deletes and updates would be published to the indexes by this session "
										  "at commit, which a prepared transaction leaves to COMMIT PREPARED."),
								errhint("Commit them with COMMIT rather than PREPARE TRANSACTION.")));
			break;
		case XACT_EVENT_PREPARE:
			// Prepared without observations: nothing of it (a drop_space's
			// permission to delete, say) may outlive it in this session.
			finish_revisions(shared_ring().last_generation());
			pending_reset();
			break;
		default:
			break;
		}
	});
}

void
on_subxact(SubXactEvent event, SubTransactionId subid, SubTransactionId parent, void *)
{
	guarded([=] {
		if (event == SUBXACT_EVENT_ABORT_SUB) {
			subxact_abort(subid);
			pending.delete_allowed_space = 0; // a drop_space that failed allows nothing afterwards
		} else if (event == SUBXACT_EVENT_COMMIT_SUB)
			subxact_commit(subid, parent);
	});
}

constexpr const char *k_capture = "engram._capture()";

struct ObservationColumns {
	Oid relid;
	AttrNumber id, space_id, embedding, confidence, metadata, observed_at;
};
ObservationColumns columns;

bool
column_is(TupleDesc desc, AttrNumber attno, const char *name, Oid type)
{
	if (attno < 1 || attno > desc->natts)
		return false;
	const Form_pg_attribute att = TupleDescAttr(desc, attno - 1);
	return !att->attisdropped && att->atttypid == type && strcmp(NameStr(att->attname), name) == 0;
}

// The columns the trigger reads, found by name and checked for their types
// (remembered per relation, and checked again on every call).
void
resolve_columns(Oid relid, TupleDesc desc)
{
	if (columns.relid == relid && column_is(desc, columns.id, "id", INT8OID) &&
		column_is(desc, columns.space_id, "space_id", INT4OID) &&
		column_is(desc, columns.embedding, "embedding", FLOAT4ARRAYOID) &&
		column_is(desc, columns.confidence, "confidence", FLOAT4OID) &&
		column_is(desc, columns.metadata, "metadata", JSONBOID) &&
		column_is(desc, columns.observed_at, "observed_at", TIMESTAMPTZOID))
		return;
	columns = ObservationColumns{relid,
								 require_column(desc, "id", INT8OID, k_capture),
								 require_column(desc, "space_id", INT4OID, k_capture),
								 require_column(desc, "embedding", FLOAT4ARRAYOID, k_capture),
								 require_column(desc, "confidence", FLOAT4OID, k_capture),
								 require_column(desc, "metadata", JSONBOID, k_capture),
								 require_column(desc, "observed_at", TIMESTAMPTZOID, k_capture)};
}

Datum
required_value(HeapTuple tuple, TupleDesc desc, AttrNumber attno, const char *name)
{
	bool isnull = false;
	const Datum value = heap_getattr(tuple, attno, desc, &isnull);
	if (isnull)
		ereport(ERROR, (errcode(ERRCODE_NOT_NULL_VIOLATION), errmsg("observation has no %s", name)));
	return value;
}

} // namespace

void
capture_register_callbacks(void)
{
	pending.context = AllocSetContextCreate(TopMemoryContext, "engram pending observations", ALLOCSET_DEFAULT_SIZES);
	RegisterXactCallback(on_xact, nullptr);
	RegisterSubXactCallback(on_subxact, nullptr);
}

std::uint64_t
capture_last_generation(void)
{
	return pending.last_generation;
}

void
capture_allow_delete(std::int32_t space_id)
{
	pending.delete_allowed_space = space_id;
}

bool
capture_delete_allowed(std::int32_t space_id)
{
	return pending.delete_allowed_space != 0 && pending.delete_allowed_space == space_id;
}

namespace {

// A row's columns as the index holds them (checked again: see the top).
struct CapturedRow {
	std::int64_t id;
	std::int32_t space_id;
	float confidence;
	std::int64_t observed_at;
	Datum embedding; // the detoasted array
	Jsonb *metadata; // nullptr for NULL
};

CapturedRow
read_row(HeapTuple tuple, TupleDesc desc)
{
	CapturedRow row;
	row.id = DatumGetInt64(required_value(tuple, desc, columns.id, "id"));
	row.space_id = DatumGetInt32(required_value(tuple, desc, columns.space_id, "space_id"));
	row.confidence = DatumGetFloat4(required_value(tuple, desc, columns.confidence, "confidence"));
	row.observed_at = DatumGetTimestampTz(required_value(tuple, desc, columns.observed_at, "observed_at"));
	row.embedding = PointerGetDatum(DatumGetArrayTypeP(required_value(tuple, desc, columns.embedding, "embedding")));
	bool isnull = false;
	const Datum metadata = heap_getattr(tuple, columns.metadata, desc, &isnull);
	row.metadata = isnull ? nullptr : DatumGetJsonbP(metadata);
	return row;
}

void
capture_inserted(const CapturedRow &row, Oid relation)
{
	ArrayType *embedding = DatumGetArrayTypeP(row.embedding);
	if (ARR_ELEMTYPE(embedding) != FLOAT4OID)
		ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("embedding must be an array of real"),
						errdetail("Got an array of %s.", format_type_be(ARR_ELEMTYPE(embedding)))));
	const SpaceDefinition *space = remembered_space(row.space_id);
	const int dim = static_cast<int>(space->dim);
	const float *values =
		check_vector(embedding, "embedding", space->name, dim, space->metric == engram::core::Metric::cosine);
	if (!(row.confidence >= 0.0f && row.confidence <= 1.0f))
		ereport(ERROR, (errcode(ERRCODE_CHECK_VIOLATION), errmsg("confidence must be between 0 and 1"),
						errdetail("Observation %lld has confidence %g.", static_cast<long long>(row.id),
								  static_cast<double>(row.confidence))));
	TokenBuffer tokens;
	metadata_tokens(row.metadata, &tokens, row.id);
	capture_row(row.id, row.space_id, relation, std::span(values, static_cast<std::size_t>(dim)), row.confidence,
				row.observed_at, std::span<const std::uint64_t>(tokens.tokens, tokens.count));
	if (tokens.tokens != nullptr)
		pfree(tokens.tokens);
}

// Whether this transaction (or one of its subtransactions) wrote the tuple.
bool
written_here(HeapTuple tuple)
{
	return TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tuple->t_data));
}

// The old version of a row leaves the index: a row of an earlier transaction
// is forgotten, one this transaction wrote is taken back.
void
capture_removed(HeapTuple old_tuple, std::int64_t id, std::int32_t space_id, Oid relation)
{
	if (written_here(old_tuple)) {
		take_back_row(id);
		return;
	}
	const SpaceDefinition *space = remembered_space(space_id);
	append_forget(space_id, space->dim, relation, id);
}

bool
same_bytes(Datum a, Datum b)
{
	const Size size = VARSIZE_ANY(DatumGetPointer(a));
	return size == VARSIZE_ANY(DatumGetPointer(b)) && memcmp(DatumGetPointer(a), DatumGetPointer(b), size) == 0;
}

[[noreturn]] void
refuse_update(std::int64_t id, const char *column)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("the %s of an observation cannot be updated", column),
			 errdetail("Observation %lld would change its %s; the index holds its embedding in its space.",
					   static_cast<long long>(id), column),
			 errhint("Delete the observation and observe it again (engram.forget, then engram.observe).")));
}

void
capture_updated(HeapTuple old_tuple, HeapTuple new_tuple, TupleDesc desc, Oid relation)
{
	const CapturedRow before = read_row(old_tuple, desc);
	const CapturedRow after = read_row(new_tuple, desc);
	if (before.id != after.id)
		refuse_update(before.id, "id");
	if (before.space_id != after.space_id)
		refuse_update(before.id, "space_id");
	if (!same_bytes(before.embedding, after.embedding))
		refuse_update(before.id, "embedding");
	const bool same_metadata =
		(before.metadata == nullptr) == (after.metadata == nullptr) &&
		(before.metadata == nullptr || same_bytes(PointerGetDatum(before.metadata), PointerGetDatum(after.metadata)));
	// Content is not in the index: an update of it alone changes nothing here.
	if (same_metadata && before.confidence == after.confidence && before.observed_at == after.observed_at)
		return;
	// A row kept as an id range is read back after the commit as the
	// transaction left it: a version of its own needs nothing more.
	if (pending.spilled && written_here(old_tuple))
		return;
	capture_removed(old_tuple, before.id, before.space_id, relation);
	capture_inserted(after, relation);
}

} // namespace

ENGRAM_FUNCTION(engram_capture)
{
	TriggerData *trigdata = require_trigger_call(fcinfo, k_capture);
	require_trigger_relation(trigdata, "observations", k_capture);
	const TriggerEvent event = trigdata->tg_event;
	if (!TRIGGER_FIRED_AFTER(event) || !TRIGGER_FIRED_FOR_ROW(event) ||
		!(TRIGGER_FIRED_BY_INSERT(event) || TRIGGER_FIRED_BY_UPDATE(event) || TRIGGER_FIRED_BY_DELETE(event)))
		report_trigger_event(k_capture, "AFTER INSERT, UPDATE or DELETE FOR EACH ROW");
	shared_require();
	instance_require_database();
	TupleDesc desc = RelationGetDescr(trigdata->tg_relation);
	const Oid relation = RelationGetRelid(trigdata->tg_relation);
	resolve_columns(relation, desc);
	HeapTuple tuple = trigdata->tg_trigtuple;
	if (TRIGGER_FIRED_BY_INSERT(event))
		capture_inserted(read_row(tuple, desc), relation);
	else if (TRIGGER_FIRED_BY_UPDATE(event))
		capture_updated(tuple, trigdata->tg_newtuple, desc, relation);
	else {
		const std::int64_t id = DatumGetInt64(required_value(tuple, desc, columns.id, "id"));
		const std::int32_t space_id = DatumGetInt32(required_value(tuple, desc, columns.space_id, "space_id"));
		// drop_space deletes its rows itself: its slot goes with them.
		if (!capture_delete_allowed(space_id))
			capture_removed(tuple, id, space_id, relation);
	}
	return PointerGetDatum(nullptr);
}
