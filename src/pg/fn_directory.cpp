// SQL functions of the space directory: the trigger that gives a new space
// its slot as it is created, and the state engram.spaces shows.
#include "pg/quarantine.hpp"
#include "pg/shared.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "catalog/namespace.h"
}

namespace {

// How long create_space waits, when no slot is free, for the workers to
// free the slots of dropped spaces and rolled back creations.
constexpr int k_free_wait_ms = 2000;

// The value of a column of the catalog row, checked for its type, so that
// the trigger reads only what engram.space_catalog holds.
Datum
column(TriggerData *trigdata, const char *name, Oid type, bool *isnull)
{
	TupleDesc desc = RelationGetDescr(trigdata->tg_relation);
	const int attno = SPI_fnumber(desc, name);
	if (attno <= 0 || TupleDescAttr(desc, attno - 1)->atttypid != type)
		elog(ERROR, "engram.space_catalog has no column %s of the expected type", name);
	return heap_getattr(trigdata->tg_trigtuple, attno, desc, isnull);
}

SpaceSlot *
install(const SpaceDefinition &definition)
{
	LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
	SpaceSlot *slot = directory_install(definition, GetCurrentTransactionId());
	LWLockRelease(shared_directory_lock());
	return slot;
}

} // namespace

// AFTER INSERT trigger on engram.space_catalog: the new space takes its
// directory slot now, in the creating transaction (the workers free it again
// if that transaction rolls back), so a full directory refuses the space
// rather than quarantining it later.
ENGRAM_FUNCTION(engram_register_space)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("engram._register_space() must be called as a trigger")));
	auto *trigdata = reinterpret_cast<TriggerData *>(fcinfo->context);
	const Oid catalog = get_relname_relid("space_catalog", get_namespace_oid("engram", false));
	if (RelationGetRelid(trigdata->tg_relation) != catalog || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || !TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("engram._register_space() must fire after each row inserted into "
							   "engram.space_catalog")));
	shared_require();
	bool isnull[6] = {};
	SpaceDefinition d{};
	d.space_id = DatumGetInt32(column(trigdata, "space_id", INT4OID, &isnull[0]));
	const Datum name = column(trigdata, "name", TEXTOID, &isnull[1]);
	d.dim = static_cast<std::uint32_t>(DatumGetInt32(column(trigdata, "dim", INT4OID, &isnull[2])));
	const Datum metric = column(trigdata, "metric", TEXTOID, &isnull[3]);
	d.m = static_cast<std::uint32_t>(DatumGetInt32(column(trigdata, "m", INT4OID, &isnull[4])));
	d.ef_construction = static_cast<std::uint32_t>(DatumGetInt32(column(trigdata, "ef_construction", INT4OID,
																		&isnull[5])));
	for (bool null : isnull)
		if (null)
			elog(ERROR, "engram.space_catalog holds a space with a null definition");
	strlcpy(d.name, TextDatumGetCString(name), sizeof d.name);
	const char *metric_name = TextDatumGetCString(metric);
	d.metric = strcmp(metric_name, "l2") == 0   ? engram::core::Metric::l2
			   : strcmp(metric_name, "ip") == 0 ? engram::core::Metric::inner_product
												: engram::core::Metric::cosine;

	SpaceSlot *slot = install(d);
	const TimestampTz started = GetCurrentTimestamp();
	while (slot == nullptr && directory_frees_pending() &&
		   !TimestampDifferenceExceeds(started, GetCurrentTimestamp(), k_free_wait_ms)) {
		shared_wake_workers();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		slot = install(d);
	}
	if (slot == nullptr)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("cannot create space \"%s\": the space directory is full", d.name),
						errdetail("All %u slots of engram.max_spaces are in use.", directory_capacity()),
						errhint("Drop unused spaces, or raise engram.max_spaces (takes a restart).")));
	return PointerGetDatum(nullptr);
}

// engram._space_condition(space_id): the state and its detail that
// engram.spaces shows; the detail is null for a ready space.
ENGRAM_FUNCTION(engram_space_condition)
{
	shared_require();
	const SpaceCondition c = space_condition(PG_GETARG_INT32(0));
	TupleDesc desc;
	if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "engram._space_condition() must return a record");
	desc = BlessTupleDesc(desc);
	const char *detail = nullptr;
	if (c.health != SPACE_READY)
		detail = psprintf("%s: %s", space_health_name(c.health), c.reason);
	else if (c.rebuilding)
		detail = "ready: being rebuilt from engram.observations";
	Datum values[2] = {CStringGetTextDatum(space_health_name(c.health)),
					   detail != nullptr ? CStringGetTextDatum(detail) : 0};
	bool nulls[2] = {false, detail == nullptr};
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
