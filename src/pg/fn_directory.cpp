// SQL functions of the space directory: the trigger that gives a new space
// its slot as it is created, and the state engram.spaces shows.
#include "pg/catalog.hpp"
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

SpaceSlot *
install(const SpaceDefinition &definition)
{
	LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
	SpaceSlot *slot = directory_install(definition, GetCurrentTransactionId());
	LWLockRelease(shared_directory_lock());
	return slot;
}

// A slot that was there before this transaction's insert: an earlier
// installation's space of the same id (ids start again at 1 after DROP and
// CREATE EXTENSION), or an aborted creation of it, which the workers free.
bool
stale(const SpaceSlot *slot)
{
	return slot != nullptr && slot->create_xid.load(std::memory_order_acquire) != GetCurrentTransactionId();
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
	// Read as every other reader of the catalog reads a row.
	const SpaceDefinition d = space_definition(trigdata->tg_trigtuple, RelationGetDescr(trigdata->tg_relation));

	SpaceSlot *slot = install(d);
	const TimestampTz started = GetCurrentTimestamp();
	// Wait (briefly) for the workers to take up this installation and free a
	// stale slot, or to free the slots of dropped spaces when none is free.
	// A stale slot still there after the wait (DROP and CREATE EXTENSION in
	// this very transaction) is used as it is: the workers give the space a
	// slot of its own at its first rows.
	while ((stale(slot) || (slot == nullptr && directory_frees_pending())) &&
		   !TimestampDifferenceExceeds(started, GetCurrentTimestamp(), k_free_wait_ms)) {
		if (stale(slot))
			shared_state()->instance_check_requested.store(1, std::memory_order_release);
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
