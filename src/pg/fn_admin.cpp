// Administration functions: pressure, the state behind engram.spaces and
// engram.workers, waiting for the workers, and the guards that keep the
// table of truth append-only.
//
// Privileges: pressure() is for every client (it reveals only how full the
// pipeline is); the state functions answer the readers of the view they
// feed; the ids a store holds are rows, so listing them takes SELECT on
// engram.observations; waiting takes INSERT or SELECT on it.
#include <algorithm>

#include "core/pressure.hpp"
#include "pg/capture.hpp"
#include "pg/catalog.hpp"
#include "pg/guc.hpp"
#include "pg/instance.hpp"
#include "pg/pressure.hpp"
#include "pg/shared.hpp"

#include "pg/postgres.hpp"
#include "pg/privileges.hpp"

namespace {

// Rows in ring records (admitted, not yet stored) and stored but not linked.
std::int64_t
pending_observations(void)
{
	return static_cast<std::int64_t>(shared_backlog().queued_rows() + unlinked_vectors().count);
}

Datum
pressure_record(FunctionCallInfo fcinfo, const engram::core::PressureReport &r, std::int64_t pending)
{
	TupleDesc desc;
	if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "engram.pressure() must return a record");
	desc = BlessTupleDesc(desc);
	Datum values[5] = {CStringGetTextDatum(engram::core::pressure_level_name(r.level)),
					   Float4GetDatum(static_cast<float>(r.fill)), Int64GetDatum(pending),
					   Int32GetDatum(r.retry_after_ms), Int32GetDatum(r.suggested_batch)};
	bool nulls[5] = {false, false, false, false, false};
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

const char *
worker_state_name(std::uint32_t state)
{
	switch (state) {
	case WORKER_IDLE:
		return "idle";
	case WORKER_LOADING:
		return "loading";
	case WORKER_DRAINING:
		return "draining";
	case WORKER_WAITING:
		return "waiting for extension";
	default:
		return "stopped";
	}
}

} // namespace

ENGRAM_FUNCTION(engram_pressure)
{
	shared_require();
	const engram::core::PressureReport r = pressure_now();
	return pressure_record(fcinfo, r, pending_observations());
}

// engram.memory_usage(): the arena behind engram.memory_limit and the space
// directory (see sql/engram--0.5.0--0.6.0.sql).
ENGRAM_FUNCTION(engram_memory_usage)
{
	shared_require();
	const engram::core::Arena arena = shared_arena();
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	const std::uint32_t taken = directory_taken();
	LWLockRelease(shared_directory_lock());
	TupleDesc desc;
	if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "engram.memory_usage() must return a record");
	desc = BlessTupleDesc(desc);
	Datum values[6] = {Int64GetDatum(static_cast<std::int64_t>(arena.used_bytes())),
					   Int64GetDatum(static_cast<std::int64_t>(arena.capacity_bytes())),
					   Int64GetDatum(static_cast<std::int64_t>(arena.free_blocks())),
					   Int32GetDatum(static_cast<std::int32_t>(taken)),
					   Int32GetDatum(static_cast<std::int32_t>(directory_capacity())),
					   Int64GetDatum(static_cast<std::int64_t>(directory_bytes(directory_capacity())))};
	bool nulls[6] = {false, false, false, false, false, false};
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

// engram.pressure(space): what a commit into that space meets now.
ENGRAM_FUNCTION(engram_space_pressure)
{
	shared_require();
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("space name must not be null")));
	const SpacePressure p = space_pressure_now(space_named(text_to_cstring(PG_GETARG_TEXT_PP(0))).space_id);
	return pressure_record(fcinfo, p.report, static_cast<std::int64_t>(p.pending));
}

ENGRAM_FUNCTION(engram_space_state)
{
	shared_require();
	require_view_reader("spaces", "engram._space_state()");
	instance_require();
	InitMaterializedSRF(fcinfo, 0);
	auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	for (const SpaceSlot &slot : directory_slots()) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE)
			continue;
		engram::core::IndexSlot &index = directory_index(&slot);
		engram::core::GraphPin pin = engram::core::pin_current(index);
		if (!pin)
			continue;
		std::int64_t memory = 0;
		if (engram::core::GraphPin other(index, 1 - pin.which()); other)
			memory += static_cast<std::int64_t>(pinned_graph(other).memory_bytes());
		const engram::core::HnswGraph graph = pinned_graph(pin);
		memory += static_cast<std::int64_t>(graph.memory_bytes());
		Datum values[5] = {Int32GetDatum(slot.space_id), Int64GetDatum(static_cast<std::int64_t>(graph.size())),
						   Int64GetDatum(static_cast<std::int64_t>(graph.linked_count())), Int64GetDatum(memory),
						   Int64GetDatum(static_cast<std::int64_t>(graph.max_generation()))};
		pin.release();
		bool nulls[5] = {false, false, false, false, false};
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return static_cast<Datum>(0);
}

// engram._space_forgotten(): per space, the nodes of its index that are
// forgotten (deleted, or an old version of an updated row) and not erased yet.
ENGRAM_FUNCTION(engram_space_forgotten)
{
	shared_require();
	require_view_reader("spaces", "engram._space_forgotten()");
	instance_require();
	InitMaterializedSRF(fcinfo, 0);
	auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	for (const SpaceSlot &slot : directory_slots()) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE)
			continue;
		engram::core::GraphPin pin = engram::core::pin_current(directory_index(&slot));
		if (!pin)
			continue;
		const std::uint64_t forgotten = pinned_graph(pin).forgotten_count();
		pin.release();
		Datum values[2] = {Int32GetDatum(slot.space_id), Int64GetDatum(static_cast<std::int64_t>(forgotten))};
		bool nulls[2] = {false, false};
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return static_cast<Datum>(0);
}

ENGRAM_FUNCTION(engram_stored_ids)
{
	shared_require();
	require_observations_readable(
		"engram._stored_ids()", psprintf("permission denied to list the observations of space %d", PG_GETARG_INT32(0)),
		"The ids are");
	instance_require();
	if (SpaceDefinition unused; !space_by_id(PG_GETARG_INT32(0), &unused))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("space %d does not exist", PG_GETARG_INT32(0)),
						errhint("List spaces in engram.spaces.")));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	const SpaceSlot *slot = directory_find(PG_GETARG_INT32(0));
	engram::core::GraphPin pin;
	if (slot != nullptr)
		pin = engram::core::pin_current(directory_index(slot));
	LWLockRelease(shared_directory_lock());
	if (!pin)
		return static_cast<Datum>(0);
	// Copied out before the tuplestore (which may raise an error) sees them.
	const engram::core::HnswGraph graph = pinned_graph(pin);
	const auto n = static_cast<std::uint32_t>(graph.size());
	auto *labels = static_cast<std::int64_t *>(palloc_extended(sizeof(std::int64_t) * std::max(n, 1u),
															   MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM));
	std::uint32_t live = 0;
	if (labels != nullptr)
		for (std::uint32_t i = 0; i < n; ++i)
			if (graph.forgotten(i) == engram::core::k_never_forgotten)
				labels[live++] = graph.label(i);
	pin.release();
	if (labels == nullptr)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	for (std::uint32_t i = 0; i < live; ++i) {
		Datum value = Int64GetDatum(labels[i]);
		bool isnull = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return static_cast<Datum>(0);
}

ENGRAM_FUNCTION(engram_worker_state)
{
	EngramShared *s = shared_require();
	require_view_reader("workers", "engram._worker_state()");
	InitMaterializedSRF(fcinfo, 0);
	auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	engram::core::Ring ring = shared_ring();
	const auto depth = static_cast<std::int64_t>(ring.committed_records() - ring.consumed_records());
	// Every worker stores and links for every space: no space is pinned to one.
	std::int32_t spaces = 0;
	for (const SpaceSlot &slot : directory_slots())
		spaces += slot.state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE ? 1 : 0;
	for (int i = 0; i < engram_workers; ++i) {
		const WorkerSlot &w = s->workers[i];
		const std::uint64_t alive = w.alive_us.load(std::memory_order_relaxed);
		const std::uint64_t busy = w.busy_us.load(std::memory_order_relaxed);
		Datum values[8] = {Int32GetDatum(i),
						   Int32GetDatum(w.pid.load(std::memory_order_relaxed)),
						   CStringGetTextDatum(worker_state_name(w.state.load(std::memory_order_relaxed))),
						   Int32GetDatum(w.pid.load(std::memory_order_relaxed) == 0 ? 0 : spaces),
						   Int64GetDatum(depth > 0 ? depth : 0),
						   Int64GetDatum(static_cast<std::int64_t>(w.stored_total.load(std::memory_order_relaxed))),
						   Int64GetDatum(static_cast<std::int64_t>(w.linked_total.load(std::memory_order_relaxed))),
						   Float4GetDatum(alive == 0 ? 0.0f : static_cast<float>(busy) / static_cast<float>(alive))};
		bool nulls[8] = {false, w.pid.load(std::memory_order_relaxed) == 0, false, false, false, false, false, false};
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return static_cast<Datum>(0);
}

ENGRAM_FUNCTION(engram_published_generation)
{
	shared_require();
	require_observations_user("engram._published_generation()");
	PG_RETURN_INT64(static_cast<std::int64_t>(shared_ring().published_generation()));
}

ENGRAM_FUNCTION(engram_wait_stored)
{
	shared_require();
	require_observations_user("engram.wait_stored()");
	instance_require();
	const int timeout_ms = PG_GETARG_INT32(0);
	if (timeout_ms < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("timeout_ms must not be negative")));
	engram::core::Ring ring = shared_ring();
	const std::uint64_t target = ring.last_generation();
	const TimestampTz started = GetCurrentTimestamp();
	while (ring.published_generation() < target || directory_frees_pending()) {
		if (TimestampDifferenceExceeds(started, GetCurrentTimestamp(), timeout_ms))
			PG_RETURN_BOOL(false);
		shared_wake_workers();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	PG_RETURN_BOOL(true);
}

// BEFORE UPDATE or DELETE (row) and BEFORE TRUNCATE (statement) on
// engram.observations: refuses all of them but drop_space's own deletes.
ENGRAM_FUNCTION(engram_guard_immutable)
{
	constexpr const char *function = "engram._guard_immutable()";
	TriggerData *trigdata = require_trigger_call(fcinfo, function);
	require_trigger_relation(trigdata, "observations", function);
	const TriggerEvent event = trigdata->tg_event;
	const bool row_change = TRIGGER_FIRED_FOR_ROW(event) &&
							(TRIGGER_FIRED_BY_UPDATE(event) || TRIGGER_FIRED_BY_DELETE(event));
	const bool truncate = TRIGGER_FIRED_FOR_STATEMENT(event) && TRIGGER_FIRED_BY_TRUNCATE(event);
	if (!TRIGGER_FIRED_BEFORE(event) || !(row_change || truncate))
		report_trigger_event(function, "BEFORE UPDATE or DELETE FOR EACH ROW, or BEFORE TRUNCATE");
	if (row_change && TRIGGER_FIRED_BY_DELETE(event)) {
		TupleDesc desc = RelationGetDescr(trigdata->tg_relation);
		bool isnull = false;
		const Datum space_id =
			heap_getattr(trigdata->tg_trigtuple, require_column(desc, "space_id", INT4OID, function), desc, &isnull);
		if (!isnull && capture_delete_allowed(DatumGetInt32(space_id)))
			return PointerGetDatum(trigdata->tg_trigtuple);
	}
	// Row events reach this function only from a catalog older than 0.4.0,
	// whose capture trigger does not forget.
	if (truncate)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("engram.observations cannot be truncated"),
						errdetail("TRUNCATE fires no row trigger, so the spaces' indexes would keep the rows."),
						errhint("Delete the rows instead (DELETE, engram.forget_before), or use engram.drop_space() "
								"to remove a whole space.")));
	ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("observations cannot be updated or deleted"),
					errdetail("engram.observations is append-only in this version of the extension's catalog."),
					errhint("Run ALTER EXTENSION engram UPDATE, or use engram.drop_space() to remove a whole space.")));
	return static_cast<Datum>(0);
}
