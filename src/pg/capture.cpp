// Capture: from a committed row of engram.observations to a ring record.
//
// The AFTER INSERT row trigger on engram.observations (every path: observe,
// observe_batch, INSERT, COPY, logical replication apply) queues the row in
// this backend's pending list, tagged with its subtransaction so a rolled
// back savepoint takes its rows with it. Nothing reaches shared memory before
// commit:
//   PRE_COMMIT  reserve ring records for all pending rows and fill them; this
//               is where backpressure acts, so a refusal aborts the
//               transaction and the client sees the error;
//   COMMIT      publish every record under one generation (cannot fail);
//   ABORT       cancel whatever was reserved.
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
#include "pg/guc.hpp"
#include "pg/instance.hpp"
#include "pg/pressure.hpp"
#include "pg/quarantine.hpp"
#include "pg/shared.hpp"

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
	Oid relation; // the table the row is in: one installation's engram.observations
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
	array = array == nullptr ? static_cast<T *>(MemoryContextAlloc(pending.context, next * sizeof(T)))
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

void
append_range(std::int32_t space_id, std::uint32_t dim, SubTransactionId subid, Oid relation, std::int64_t id)
{
	if (pending.range_count > 0) {
		PendingRange &last = pending.ranges[pending.range_count - 1];
		if (last.space_id == space_id && last.subid == subid && last.relation == relation && last.dim == dim && last.last + 1 == id) {
			last.last = id;
			return;
		}
	}
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
	pending.observations++;
	if (!pending.spilled && (pending.float_count + dim) * sizeof(float) > spill_threshold_bytes())
		spill_rows_to_ranges();
	if (pending.spilled) {
		append_range(space_id, dim, subid, relation, id);
		return;
	}
	grow(pending.rows, pending.row_capacity, pending.row_count + 1);
	grow(pending.vectors, pending.float_capacity, pending.float_count + dim);
	std::memcpy(pending.vectors + pending.float_count, vector.data(), dim * sizeof(float));
	pending.rows[pending.row_count++] = PendingRow{id, space_id, dim, subid, confidence, relation, pending.float_count};
	pending.float_count += dim;
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

[[noreturn]] void
report_overload(const engram::core::PressureReport &report, bool memory_bound, bool timed_out)
{
	if (memory_bound) {
		const engram::core::Arena arena = shared_arena();
		const std::size_t used = arena.used_bytes(), capacity = arena.capacity_bytes();
		ereport(ERROR,
				(errcode(ERRCODE_ENGRAM_OVERLOADED), errmsg("engram ingest pipeline is overloaded"),
				 errdetail("The indexes use %.0f%% of engram.memory_limit (%zu of %zu bytes)%s, so the workers cannot "
						   "store more observations.",
						   100.0 * static_cast<double>(used) / static_cast<double>(capacity), used, capacity,
						   timed_out ? psprintf(" and no memory was freed within %d ms", engram_overload_timeout_ms)
									 : ""),
				 errhint("Raise engram.memory_limit (takes a restart), or drop spaces that are no longer needed.")));
	}
	ereport(ERROR,
			(errcode(ERRCODE_ENGRAM_OVERLOADED), errmsg("engram ingest pipeline is overloaded"),
			 errdetail("The pipeline is %.0f%% full (overloaded at %.0f%%)%s.", report.fill * 100.0,
					   engram_pressure_overloaded * 100.0,
					   timed_out ? psprintf(" and did not drain within %d ms", engram_overload_timeout_ms) : ""),
			 errhint("Retry after %d ms with batches of %d, or raise engram.ring_size, engram.workers or "
					 "engram.overload_timeout.",
					 report.retry_after_ms, report.suggested_batch)));
}

// Claims one ring record, applying the overload policy while the pipeline is
// overloaded or the ring has no room.
engram::core::Reservation
reserve_with_backpressure(engram::core::Ring &ring, std::size_t bytes)
{
	const TimestampTz started = GetCurrentTimestamp();
	for (;;) {
		bool memory_bound = false;
		const engram::core::PressureReport report = pressure_now(&memory_bound);
		if (report.level != engram::core::PressureLevel::overloaded) {
			engram::core::Reservation r = ring.try_reserve(bytes, static_cast<std::uint32_t>(MyProcPid));
			if (r.status == engram::core::ReserveStatus::ok)
				return r;
			if (r.status == engram::core::ReserveStatus::too_large)
				elog(ERROR, "ring record of %zu bytes exceeds the ring", bytes);
		}
		if (engram_overload_policy == ENGRAM_POLICY_ERROR)
			report_overload(report, memory_bound, false);
		if (TimestampDifferenceExceeds(started, GetCurrentTimestamp(), engram_overload_timeout_ms))
			report_overload(report, memory_bound, true);
		shared_wake_workers();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

void
remember_reservation(std::uint64_t position)
{
	grow(pending.reserved, pending.reserved_capacity, pending.reserved_count + 1);
	pending.reserved[pending.reserved_count++] = position;
}

engram::core::InstanceId
instance_of(Oid relation)
{
	return {MyDatabaseId, relation};
}

// Vector records: consecutive rows of one space, as many as one record holds.
void
reserve_vector_records(engram::core::Ring &ring, std::uint32_t xid)
{
	const std::size_t max_payload = std::min<std::size_t>(ring.max_payload_bytes(), 1 << 20);
	std::size_t i = 0;
	while (i < pending.row_count) {
		const PendingRow &first = pending.rows[i];
		const std::uint32_t limit = std::max<std::uint32_t>(engram::core::vectors_per_payload(max_payload, first.dim), 1);
		std::size_t end = i + 1;
		while (end < pending.row_count && end - i < limit && pending.rows[end].space_id == first.space_id &&
			   pending.rows[end].relation == first.relation &&
			   pending.rows[end].dim == first.dim)
			++end;
		const auto count = static_cast<std::uint32_t>(end - i);
		space_require_committable(first.space_id);
		engram::core::Reservation r =
			reserve_with_backpressure(ring, engram::core::vectors_payload_bytes(count, first.dim));
		remember_reservation(r.position);
		engram::core::VectorsSections s =
			engram::core::write_vectors_header(r.payload, first.space_id, first.dim, count, xid,
											   instance_of(first.relation));
		for (std::uint32_t k = 0; k < count; ++k) {
			const PendingRow &row = pending.rows[i + k];
			s.ids[k] = row.id;
			s.confidences[k] = row.confidence;
		}
		std::memcpy(s.vectors.data(), pending.vectors + first.vector_offset,
					std::size_t{count} * first.dim * sizeof(float));
		i = end;
	}
}

void
reserve_range_records(engram::core::Ring &ring, std::uint32_t xid)
{
	constexpr std::uint32_t k_ranges_per_record = 4096;
	std::size_t i = 0;
	while (i < pending.range_count) {
		const PendingRange &first = pending.ranges[i];
		std::size_t end = i + 1;
		while (end < pending.range_count && end - i < k_ranges_per_record &&
			   pending.ranges[end].space_id == first.space_id && pending.ranges[end].relation == first.relation &&
			   pending.ranges[end].dim == first.dim)
			++end;
		const auto count = static_cast<std::uint32_t>(end - i);
		space_require_committable(first.space_id);
		engram::core::Reservation r = reserve_with_backpressure(ring, engram::core::ranges_payload_bytes(count));
		remember_reservation(r.position);
		std::span<engram::core::IdRange> out =
			engram::core::write_ranges_header(r.payload, first.space_id, first.dim, count, xid,
											  instance_of(first.relation));
		for (std::uint32_t k = 0; k < count; ++k)
			out[k] = {pending.ranges[i + k].first, pending.ranges[i + k].last};
		i = end;
	}
}

void
pre_commit(void)
{
	if (pending.observations == 0)
		return;
	engram::core::Ring ring = shared_ring();
	// The generation continues from the WAL position so it keeps growing
	// across restarts (every commit writes WAL, so it never overtakes it).
	if (ring.last_generation() == 0)
		ring.seed_generation(GetXLogInsertRecPtr());
	const auto xid = static_cast<std::uint32_t>(GetTopTransactionId());
	reserve_vector_records(ring, xid);
	reserve_range_records(ring, xid);
}

void
commit(void)
{
	if (pending.reserved_count > 0) {
		engram::core::Ring ring = shared_ring();
		const std::uint64_t generation = ring.commit(std::span(pending.reserved, pending.reserved_count));
		if (generation == 0)
			elog(WARNING, "engram lost track of %zu ring records of this transaction; the workers will "
						  "pick the rows up at their next reload",
				 pending.reserved_count);
		else
			pending.last_generation = generation;
		shared_state()->observations_published.fetch_add(pending.observations, std::memory_order_relaxed);
		shared_wake_workers();
	}
	pending_reset();
}

void
abort_transaction(void)
{
	if (pending.reserved_count > 0) {
		engram::core::Ring ring = shared_ring();
		for (std::size_t i = 0; i < pending.reserved_count; ++i)
			ring.cancel(pending.reserved[i]);
	}
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
				if (pending.observations > 0)
					ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
									errmsg("cannot prepare a transaction that observed into engram"),
									errhint("Commit observations with COMMIT rather than PREPARE TRANSACTION.")));
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
	const SpaceShape *shape = space_shape(space_id);
	const float *values = check_vector(embedding, "embedding", shape->name, shape->dim, shape->cosine);
	if (!(confidence >= 0.0f && confidence <= 1.0f))
		ereport(ERROR, (errcode(ERRCODE_CHECK_VIOLATION), errmsg("confidence must be between 0 and 1"),
						errdetail("Observation %lld has confidence %g.", static_cast<long long>(id),
								  static_cast<double>(confidence))));
	capture_row(id, space_id, RelationGetRelid(trigdata->tg_relation), std::span(values, static_cast<std::size_t>(shape->dim)), confidence);
	return PointerGetDatum(nullptr);
}
