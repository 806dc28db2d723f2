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
// AFTER INSERT FOR EACH ROW on engram.observations itself, reads columns of
// the expected types only, and checks every row again (space, dimension,
// components, confidence) even though the table's CHECK constraints already
// did, since ring records are trusted by the workers. A record holds rows of
// one space and one dimension, each sized by its own rows.
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
#include "pg/guc.hpp"
#include "pg/instance.hpp"
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
	float confidence;
	Oid relation;              // the table the row is in: one installation's engram.observations
	std::size_t vector_offset; // into Pending::vectors, in floats
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

// Rows while their vectors fit the budget, then ranges of ids only.
struct Pending {
	MemoryContext context;
	PendingRow *rows;
	std::size_t row_count, row_capacity;
	float *vectors;
	std::size_t float_count, float_capacity;
	PendingRange *ranges;
	std::size_t range_count, range_capacity;
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

[[noreturn]] void
report_too_large(std::uint64_t observations, std::size_t cells, const char *counted)
{
	const std::size_t ring_bytes = static_cast<std::size_t>(engram_ring_size_kb) * 1024;
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("transaction is too large for the engram ingest pipeline"),
			 errdetail("Its %llu observations need %s%zu bytes of ring records, more than half of engram.ring_size "
					   "(%zu bytes): the most one transaction may hold at once.",
					   static_cast<unsigned long long>(observations), counted, cells * engram::core::k_ring_cell_bytes,
					   ring_bytes),
			 errhint("Split it into smaller transactions, insert each space's rows as runs of consecutive ids, or "
					 "raise engram.ring_size.")));
}

void
append_range(std::int32_t space_id, std::uint32_t dim, SubTransactionId subid, Oid relation, std::int64_t id)
{
	if (pending.range_count > 0) {
		PendingRange &last = pending.ranges[pending.range_count - 1];
		if (last.space_id == space_id && last.subid == subid && last.relation == relation && last.dim == dim &&
			last.last + 1 == id) {
			last.last = id;
			return;
		}
	}
	// Each range takes 16 bytes of a record: refused as soon as the ranges
	// alone cannot fit, rather than after the rest of a long COPY.
	const std::size_t cells = record_cells(sizeof(engram::core::IdRange) * (pending.range_count + 1));
	if (cells > transaction_limit_cells())
		report_too_large(pending.observations + 1, cells,
						 psprintf("at least %zu id ranges, hence ", pending.range_count + 1));
	grow(pending.ranges, pending.range_capacity, pending.range_count + 1);
	pending.ranges[pending.range_count++] = PendingRange{space_id, dim, subid, relation, id, id};
}

// Switches the transaction to id ranges once its vectors outgrow the budget.
void
spill_rows_to_ranges(void)
{
	for (std::size_t i = 0; i < pending.row_count; ++i) {
		const PendingRow &r = pending.rows[i];
		append_range(r.space_id, r.dim, r.subid, r.relation, r.id);
	}
	if (pending.rows != nullptr) // nothing kept yet when the first row alone outgrows the budget
		pfree(pending.rows);
	pending.rows = nullptr;
	pending.row_count = pending.row_capacity = 0;
	if (pending.vectors != nullptr)
		pfree(pending.vectors);
	pending.vectors = nullptr;
	pending.float_count = pending.float_capacity = 0;
	pending.spilled = true;
}

void
capture_row(std::int64_t id, std::int32_t space_id, Oid relation, std::span<const float> vector, float confidence)
{
	const SubTransactionId subid = GetCurrentSubTransactionId();
	const auto dim = static_cast<std::uint32_t>(vector.size());
	// The budget counts what the rows take in vectors records (vector, id, confidence).
	if (!pending.spilled &&
		(pending.float_count + dim) * sizeof(float) + (pending.row_count + 1) * 12 > spill_threshold_bytes())
		spill_rows_to_ranges();
	if (pending.spilled) {
		append_range(space_id, dim, subid, relation, id);
	} else {
		grow(pending.rows, pending.row_capacity, pending.row_count + 1);
		grow(pending.vectors, pending.float_capacity, pending.float_count + dim);
		std::memcpy(pending.vectors + pending.float_count, vector.data(), dim * sizeof(float));
		pending.rows[pending.row_count++] =
			PendingRow{id, space_id, dim, subid, confidence, relation, pending.float_count};
		pending.float_count += dim;
	}
	// Counted once held, so a row refused above leaves the count as it was.
	pending.observations++;
}

// Rows and ranges of a subtransaction always form the tail of their lists,
// because a subtransaction's children are folded into it when they commit.
void
subxact_abort(SubTransactionId subid)
{
	while (pending.row_count > 0 && pending.rows[pending.row_count - 1].subid == subid) {
		pending.row_count--;
		pending.float_count = pending.rows[pending.row_count].vector_offset;
		pending.observations--;
	}
	while (pending.range_count > 0 && pending.ranges[pending.range_count - 1].subid == subid) {
		const PendingRange &r = pending.ranges[--pending.range_count];
		pending.observations -= static_cast<std::uint64_t>(r.last - r.first + 1);
	}
}

void
subxact_commit(SubTransactionId subid, SubTransactionId parent)
{
	for (std::size_t i = pending.row_count; i > 0 && pending.rows[i - 1].subid == subid; --i)
		pending.rows[i - 1].subid = parent;
	for (std::size_t i = pending.range_count; i > 0 && pending.ranges[i - 1].subid == subid; --i)
		pending.ranges[i - 1].subid = parent;
}

// --- pre-commit: plan, check, admit, reserve ----------------------------------

void
plan_record(const PlannedRecord &record)
{
	grow(pending.plan, pending.plan_capacity, pending.plan_count + 1);
	pending.plan[pending.plan_count++] = record;
}

// Vector records hold consecutive rows of one space and dimension, as many as
// one record holds; id-range records likewise up to 4096 ranges.
void
plan_records(std::size_t max_payload)
{
	constexpr std::uint32_t k_ranges_per_record = 4096;
	for (std::size_t i = 0; i < pending.row_count;) {
		const PendingRow &first = pending.rows[i];
		const std::uint32_t limit =
			std::max<std::uint32_t>(engram::core::vectors_per_payload(max_payload, first.dim), 1);
		std::size_t end = i + 1;
		while (end < pending.row_count && end - i < limit && pending.rows[end].space_id == first.space_id &&
			   pending.rows[end].dim == first.dim && pending.rows[end].relation == first.relation)
			++end;
		const auto count = static_cast<std::uint32_t>(end - i);
		plan_record(PlannedRecord{engram::core::BatchKind::vectors, first.space_id, first.dim, count, first.relation, i,
								  count, engram::core::vectors_payload_bytes(count, first.dim)});
		i = end;
	}
	for (std::size_t i = 0; i < pending.range_count;) {
		const PendingRange &first = pending.ranges[i];
		std::size_t end = i + 1;
		std::uint64_t rows = static_cast<std::uint64_t>(first.last - first.first + 1);
		while (end < pending.range_count && end - i < k_ranges_per_record &&
			   pending.ranges[end].space_id == first.space_id && pending.ranges[end].dim == first.dim &&
			   pending.ranges[end].relation == first.relation) {
			rows += static_cast<std::uint64_t>(pending.ranges[end].last - pending.ranges[end].first + 1);
			++end;
		}
		const auto count = static_cast<std::uint32_t>(end - i);
		plan_record(PlannedRecord{engram::core::BatchKind::id_ranges, first.space_id, first.dim, count, first.relation,
								  i, rows, engram::core::ranges_payload_bytes(count)});
		i = end;
	}
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
	if (record.kind == engram::core::BatchKind::id_ranges) {
		std::span<engram::core::IdRange> out = engram::core::write_ranges_header(payload, record.space_id, record.dim,
																				 record.count, xid,
																				 instance_of(record.relation));
		for (std::uint32_t k = 0; k < record.count; ++k)
			out[k] = {pending.ranges[record.first + k].first, pending.ranges[record.first + k].last};
		return;
	}
	engram::core::VectorsSections s = engram::core::write_vectors_header(payload, record.space_id, record.dim,
																		 record.count, xid,
																		 instance_of(record.relation));
	for (std::uint32_t k = 0; k < record.count; ++k) {
		const PendingRow &row = pending.rows[record.first + k];
		s.ids[k] = row.id;
		s.confidences[k] = row.confidence;
	}
	std::memcpy(s.vectors.data(), pending.vectors + pending.rows[record.first].vector_offset,
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
		const engram::core::Arena arena = shared_arena();
		const std::size_t used = arena.used_bytes(), capacity = arena.capacity_bytes();
		ereport(ERROR,
				(errcode(ERRCODE_ENGRAM_OVERLOADED), errmsg("engram ingest pipeline is overloaded"),
				 errdetail("The indexes use %.0f%% of engram.memory_limit (%zu of %zu bytes), so the workers cannot "
						   "store more observations%s.",
						   100.0 * static_cast<double>(used) / static_cast<double>(capacity), used, capacity, waited),
				 errhint("Raise engram.memory_limit (takes a restart), or drop spaces that are no longer needed.")));
	}
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
	if (StatementTimeout > 0 && TimestampDifferenceExceeds(GetCurrentStatementStartTimestamp(), now, StatementTimeout))
		ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED), errmsg("canceling statement due to statement timeout"),
						errdetail("The commit was waiting for room in the engram ingest pipeline.")));
}

// Admits the transaction's rows and reserves its records, applying the
// overload policy while a space it writes to is over its share, memory is
// full, or the ring has no room for all of its records.
void
admit_and_reserve(engram::core::Ring &ring, std::uint32_t xid)
{
	const std::span<const engram::core::BacklogDemand> demands(pending.demands, pending.demand_count);
	const TimestampTz started = GetCurrentTimestamp();
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

void
pre_commit(void)
{
	if (pending.observations == 0)
		return;
	engram::core::Ring ring = shared_ring();
	plan_records(std::min<std::size_t>(ring.max_payload_bytes(), 1 << 20));
	std::size_t cells = 0;
	for (std::size_t i = 0; i < pending.plan_count; ++i)
		cells += record_cells(pending.plan[i].payload_bytes);
	if (cells > transaction_limit_cells())
		report_too_large(pending.observations, cells, "");
	for (std::size_t i = 0; i < pending.plan_count; ++i)
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
		const std::uint64_t generation = ring.commit(std::span(pending.reserved, pending.reserved_count));
		if (generation == 0)
			elog(WARNING,
				 "engram lost track of %zu ring records of this transaction; the workers will "
				 "pick the rows up at their next reload",
				 pending.reserved_count);
		else
			pending.last_generation = generation;
		shared_wake_workers();
	}
	// The admitted rows are the workers' now: they take them off the backlog
	// as they pop the records.
	pending_reset();
}

void
abort_transaction(void)
{
	release_reservations();
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
			break;
		case XACT_EVENT_PREPARE:
			// Prepared without observations: nothing of it (a drop_space's
			// permission to delete, say) may outlive it in this session.
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
	AttrNumber id, space_id, embedding, confidence;
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
		column_is(desc, columns.confidence, "confidence", FLOAT4OID))
		return;
	columns = ObservationColumns{relid, require_column(desc, "id", INT8OID, k_capture),
								 require_column(desc, "space_id", INT4OID, k_capture),
								 require_column(desc, "embedding", FLOAT4ARRAYOID, k_capture),
								 require_column(desc, "confidence", FLOAT4OID, k_capture)};
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

ENGRAM_FUNCTION(engram_capture)
{
	TriggerData *trigdata = require_trigger_call(fcinfo, k_capture);
	require_trigger_relation(trigdata, "observations", k_capture);
	const TriggerEvent event = trigdata->tg_event;
	if (!TRIGGER_FIRED_AFTER(event) || !TRIGGER_FIRED_FOR_ROW(event) || !TRIGGER_FIRED_BY_INSERT(event))
		report_trigger_event(k_capture, "AFTER INSERT FOR EACH ROW");
	shared_require();
	instance_require_database();
	TupleDesc desc = RelationGetDescr(trigdata->tg_relation);
	resolve_columns(RelationGetRelid(trigdata->tg_relation), desc);
	HeapTuple tuple = trigdata->tg_trigtuple;
	const std::int64_t id = DatumGetInt64(required_value(tuple, desc, columns.id, "id"));
	const std::int32_t space_id = DatumGetInt32(required_value(tuple, desc, columns.space_id, "space_id"));
	const float confidence = DatumGetFloat4(required_value(tuple, desc, columns.confidence, "confidence"));
	ArrayType *embedding = DatumGetArrayTypeP(required_value(tuple, desc, columns.embedding, "embedding"));
	if (ARR_ELEMTYPE(embedding) != FLOAT4OID)
		ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("embedding must be an array of real"),
						errdetail("Got an array of %s.", format_type_be(ARR_ELEMTYPE(embedding)))));
	const SpaceDefinition *space = remembered_space(space_id);
	const int dim = static_cast<int>(space->dim);
	const float *values =
		check_vector(embedding, "embedding", space->name, dim, space->metric == engram::core::Metric::cosine);
	if (!(confidence >= 0.0f && confidence <= 1.0f))
		ereport(ERROR, (errcode(ERRCODE_CHECK_VIOLATION), errmsg("confidence must be between 0 and 1"),
						errdetail("Observation %lld has confidence %g.", static_cast<long long>(id),
								  static_cast<double>(confidence))));
	capture_row(id, space_id, RelationGetRelid(trigdata->tg_relation), std::span(values, static_cast<std::size_t>(dim)),
				confidence);
	return PointerGetDatum(nullptr);
}
