// A space's life: engram.create_space, engram.drop_space,
// engram.alter_space_owner, and the guard that keeps engram.space_catalog
// from changing behind their back.
//
// Who may do what (docs/usage.md, "Privileges"): creating a space takes
// EXECUTE on create_space (revoked from PUBLIC), and the creating role owns
// the space; dropping it or giving it away takes the privileges of its owner.
// The caller is checked first; then the function changes the catalog and the
// table as the owner of engram's tables, with fixed, fully qualified SQL, so
// that an owner needs no privilege on those tables, and a role granted such a
// privilege still cannot change a space it does not own.
#include <cstring>
#include <limits>

#include "pg/capture.hpp"
#include "pg/catalog.hpp"
#include "pg/revisions.hpp"
#include "pg/shared.hpp"

#include "pg/postgres.hpp"
#include "pg/instance.hpp"
#include "pg/privileges.hpp"

extern "C" {
#include "utils/acl.h"
#include "utils/syscache.h"
}

namespace {

// The most dimensions a space may have, by storage. An f32 space holds 4
// bytes a component in its graph; f16 and sq8 hold half and a quarter of
// that, so their larger vectors take no more memory per node. Rows over
// about 2,000 dimensions no longer fit a heap tuple, so the table keeps their
// embeddings in TOAST (docs/architecture.md, "The embedding column").
constexpr int k_max_dim_f32 = 2000;
constexpr int k_max_dim_quantized = 4096;

[[noreturn]] void
report_dimension_out_of_range(const char *dim, bool quantized_would_do)
{
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("dimension %s is out of range", dim),
					errdetail("A space holds vectors of 1 to %d dimensions with storage \"f32\", and of 1 to %d with "
							  "\"f16\" or \"sq8\".",
							  k_max_dim_f32, k_max_dim_quantized),
					quantized_would_do ? errhint("Create the space with storage => 'f16' or 'sq8'; see \"Choosing "
												 "storage\" in docs/usage.md.")
									   : 0));
}

// A catalog older than 0.6.0 stores embeddings inline (PLAIN), where a row
// of more than about 2,000 dimensions does not fit: refused here rather than
// at the first insert, until ALTER EXTENSION engram UPDATE.
void
require_wide_rows_storable(int dim)
{
	const Oid relid = engram_relation("observations");
	HeapTuple tuple = SearchSysCacheAttName(relid, "embedding");
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "engram.observations has no column \"embedding\"");
	const char storage = reinterpret_cast<Form_pg_attribute>(GETSTRUCT(tuple))->attstorage;
	ReleaseSysCache(tuple);
	if (storage == TYPSTORAGE_PLAIN)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("engram.observations cannot hold vectors of %d dimensions yet", dim),
						errdetail("The installed version of the extension stores embeddings inline, which holds at "
								  "most %d dimensions.",
								  k_max_dim_f32),
						errhint("Run ALTER EXTENSION engram UPDATE.")));
}

bool
valid_space_name(const char *name)
{
	const std::size_t n = strlen(name);
	if (n < 3 || n > 64)
		return false;
	for (std::size_t i = 0; i < n; ++i) {
		const char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

const char *
int_arg_text(FunctionCallInfo fcinfo, int arg)
{
	return PG_ARGISNULL(arg) ? "NULL" : psprintf("%d", PG_GETARG_INT32(arg));
}

const char *
space_name_arg(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("space name must not be null")));
	return text_to_cstring(PG_GETARG_TEXT_PP(0));
}

// Locks the space's catalog row (so that drops and owner changes of one space
// serialize) and checks the caller against the owner found under the lock.
// Runs elevated, inside SPI.
void
lock_space_as_owner(SpaceDefinition &space, Oid caller, const char *hint)
{
	if (!lock_space_row(space))
		report_unknown_space(space.name);
	require_space_owner(space, caller, hint);
}

void
run_on_space(const char *sql, std::int32_t space_id, int expected)
{
	Oid argtype = INT4OID;
	Datum arg = Int32GetDatum(space_id);
	if (SPI_execute_with_args(sql, 1, &argtype, &arg, nullptr, false, 0) != expected)
		elog(ERROR, "could not run \"%s\"", sql);
}

// The workers free the space's graphs once this (sub)transaction commits.
void
mark_dropped(std::int32_t space_id)
{
	shared_require();
	instance_require_loaded();
	const TransactionId xid = GetCurrentTransactionId();
	LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
	if (SpaceSlot *slot = directory_find(space_id)) {
		slot->drop_xid.store(xid, std::memory_order_release);
		directory_owe(slot, DUTY_RESOLVE);
	}
	LWLockRelease(shared_directory_lock());
}

} // namespace

// engram._space_id(name): resolves a space name for the SQL functions, with
// the error every function gives for unknown ones. In C rather than
// PL/pgSQL, which would need a search_path of its own that observe() would
// pay for on every call.
ENGRAM_FUNCTION(engram_space_id)
{
	const char *name = space_name_arg(fcinfo);
	PG_RETURN_INT32(space_named(name).space_id);
}

// engram.create_space(name, dim, metric, m, ef_construction, storage): the
// new space's id. A catalog older than 0.5.0 declares no storage argument
// and has no column for it: its spaces are f32.
ENGRAM_FUNCTION(engram_create_space)
{
	const char *name = space_name_arg(fcinfo);
	if (!valid_space_name(name))
		ereport(ERROR, (errcode(ERRCODE_INVALID_NAME), errmsg("invalid space name \"%s\"", name),
						errdetail("A space name has 3 to 64 characters, each a lower-case letter, a digit, \"_\" or "
								  "\"-\"."),
						errhint("Choose a name such as \"agent_memory\".")));
	if (PG_ARGISNULL(1) || PG_GETARG_INT32(1) < 1 || PG_GETARG_INT32(1) > k_max_dim_quantized)
		report_dimension_out_of_range(int_arg_text(fcinfo, 1), false);
	const std::int32_t dim = PG_GETARG_INT32(1);
	const char *metric = PG_ARGISNULL(2) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (metric == nullptr || !metric_named(metric))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("unknown metric \"%s\"", metric == nullptr ? "<NULL>" : metric),
						errhint("Use \"l2\", \"cosine\" or \"ip\".")));
	if (PG_ARGISNULL(3) || PG_GETARG_INT32(3) < 2 || PG_GETARG_INT32(3) > 100)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("m %s is out of range", int_arg_text(fcinfo, 3)),
				 errdetail("The number of neighbours per node, m, must be between 2 and 100.")));
	const std::int32_t m = PG_GETARG_INT32(3);
	if (PG_ARGISNULL(4) || PG_GETARG_INT32(4) < m || PG_GETARG_INT32(4) > 1000)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("ef_construction %s is out of range", int_arg_text(fcinfo, 4)),
						errdetail("ef_construction must be between m (%d) and 1000.", m)));
	const bool with_storage = PG_NARGS() > 5;
	const char *storage = with_storage && !PG_ARGISNULL(5) ? text_to_cstring(PG_GETARG_TEXT_PP(5)) : nullptr;
	if (with_storage && (storage == nullptr || !encoding_named(storage)))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("unknown storage \"%s\"", storage == nullptr ? "<NULL>" : storage),
						errdetail("storage is how the space's index holds each vector: \"f32\" (4 bytes a "
								  "component, exact), \"f16\" (2 bytes) or \"sq8\" (1 byte, 8-bit scalar "
								  "quantization)."),
						errhint("Use \"f32\", \"f16\" or \"sq8\"; see \"Choosing storage\" in docs/usage.md.")));
	// A catalog older than 0.5.0 has only f32 spaces.
	if (dim > k_max_dim_f32 && (storage == nullptr || strcmp(storage, "f32") == 0))
		report_dimension_out_of_range(int_arg_text(fcinfo, 1), with_storage);
	if (dim > k_max_dim_f32)
		require_wide_rows_storable(dim);

	const Oid caller = GetUserId();
	const SavedUser saved = elevate_to_extension_owner();
	SPI_connect();
	Oid types[7] = {TEXTOID, INT4OID, TEXTOID, INT4OID, INT4OID, REGROLEOID, TEXTOID};
	Datum values[7] = {CStringGetTextDatum(name),
					   PG_GETARG_DATUM(1),
					   CStringGetTextDatum(metric),
					   PG_GETARG_DATUM(3),
					   PG_GETARG_DATUM(4),
					   ObjectIdGetDatum(caller),
					   CStringGetTextDatum(storage != nullptr ? storage : "f32")};
	const char *insert =
		with_storage ? "INSERT INTO engram.space_catalog (name, dim, metric, m, ef_construction, owner, storage) "
					   "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING RETURNING space_id"
					 : "INSERT INTO engram.space_catalog (name, dim, metric, m, ef_construction, owner) "
					   "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING space_id";
	if (SPI_execute_with_args(insert, with_storage ? 7 : 6, types, values, nullptr, false, 1) !=
		SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not insert into engram.space_catalog");
	const bool created = SPI_processed == 1;
	bool isnull = false;
	const std::int32_t space_id =
		created ? DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) : 0;
	SPI_finish();
	restore_user(saved);
	if (!created)
		ereport(ERROR, (errcode(ERRCODE_DUPLICATE_OBJECT), errmsg("space \"%s\" already exists", name),
						errhint("Use another name, or engram.drop_space() first.")));
	PG_RETURN_INT32(space_id);
}

// engram.drop_space(name): deletes the space's rows and catalog row; the
// workers free its memory once the transaction commits.
ENGRAM_FUNCTION(engram_drop_space)
{
	const char *name = space_name_arg(fcinfo);
	constexpr const char *hint = "Drop it as its owner, or as a member of the owning role.";
	SpaceDefinition space = space_named(name);
	const Oid caller = GetUserId();
	require_space_owner(space, caller, hint);

	const SavedUser saved = elevate_to_extension_owner();
	SPI_connect();
	lock_space_as_owner(space, caller, hint);
	mark_dropped(space.space_id);
	capture_allow_delete(space.space_id);
	run_on_space("DELETE FROM engram.observations WHERE space_id OPERATOR(pg_catalog.=) $1", space.space_id,
				 SPI_OK_DELETE);
	capture_allow_delete(0);
	prune_revisions(space.space_id, std::numeric_limits<std::int64_t>::max()); // all of them
	run_on_space("DELETE FROM engram.space_catalog WHERE space_id OPERATOR(pg_catalog.=) $1", space.space_id,
				 SPI_OK_DELETE);
	SPI_finish();
	restore_user(saved);
	PG_RETURN_VOID();
}

// engram._forget_space(space_id) of version 0.1.0, whose drop_space calls it
// before deleting the rows as its caller; 0.2.0 drops the SQL function, and
// the symbol stays for databases not updated yet. Owner only, like drop_space.
ENGRAM_FUNCTION(engram_forget_space)
{
	const std::int32_t space_id = PG_GETARG_INT32(0);
	SpaceDefinition space;
	if (!space_by_id(space_id, &space))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("space %d does not exist", space_id)));
	require_space_owner(space, GetUserId(), "Drop it as its owner, or as a member of the owning role.");
	mark_dropped(space_id);
	capture_allow_delete(space_id);
	PG_RETURN_VOID();
}

// engram.alter_space_owner(space, new_owner), by the rules of ALTER TABLE
// ... OWNER TO: the caller must have the privileges of the current owner and
// be a member of the new one (superusers may do anything).
ENGRAM_FUNCTION(engram_alter_space_owner)
{
	const char *name = space_name_arg(fcinfo);
	constexpr const char *hint = "Change it as its owner, or as a member of the owning role.";
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("new owner must not be null")));
	const Oid new_owner = PG_GETARG_OID(1);
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(new_owner)))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("role with OID %u does not exist", new_owner)));
	SpaceDefinition space = space_named(name);
	const Oid caller = GetUserId();
	require_space_owner(space, caller, hint);
	if (!is_member_of_role(caller, new_owner))
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						errmsg("must be member of role \"%s\"", GetUserNameFromId(new_owner, false)),
						errdetail("Giving a space to a role takes the right to act as that role, as ALTER TABLE ... "
								  "OWNER TO does.")));

	const SavedUser saved = elevate_to_extension_owner();
	SPI_connect();
	lock_space_as_owner(space, caller, hint);
	Oid types[2] = {INT4OID, REGROLEOID};
	Datum values[2] = {Int32GetDatum(space.space_id), ObjectIdGetDatum(new_owner)};
	if (SPI_execute_with_args("UPDATE engram.space_catalog SET owner = $2 WHERE space_id OPERATOR(pg_catalog.=) $1", 2,
							  types, values, nullptr, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not change the owner of space \"%s\"", name);
	SPI_finish();
	restore_user(saved);
	PG_RETURN_VOID();
}

// BEFORE INSERT, UPDATE, DELETE (row) and TRUNCATE (statement) on
// engram.space_catalog: only engram's functions (running as the tables'
// owner) and superusers change the catalog, whatever else was granted on it.
ENGRAM_FUNCTION(engram_guard_catalog)
{
	constexpr const char *function = "engram._guard_catalog()";
	TriggerData *trigdata = require_trigger_call(fcinfo, function);
	require_trigger_relation(trigdata, "space_catalog", function);
	const TriggerEvent event = trigdata->tg_event;
	const bool row_change =
		TRIGGER_FIRED_FOR_ROW(event) &&
		(TRIGGER_FIRED_BY_INSERT(event) || TRIGGER_FIRED_BY_UPDATE(event) || TRIGGER_FIRED_BY_DELETE(event));
	const bool truncate = TRIGGER_FIRED_FOR_STATEMENT(event) && TRIGGER_FIRED_BY_TRUNCATE(event);
	if (!TRIGGER_FIRED_BEFORE(event) || !(row_change || truncate))
		report_trigger_event(function, "BEFORE INSERT, UPDATE or DELETE FOR EACH ROW, or BEFORE TRUNCATE");
	if (!acting_as_extension_owner()) {
		const char *action = TRIGGER_FIRED_BY_INSERT(event)   ? "insert into"
							 : TRIGGER_FIRED_BY_UPDATE(event) ? "update"
							 : TRIGGER_FIRED_BY_DELETE(event) ? "delete from"
															  : "truncate";
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						errmsg("engram.space_catalog is changed only through engram's functions"),
						errdetail("Role \"%s\" may not %s it directly: the indexes and the owners' privileges rest on "
								  "its rows.",
								  GetUserNameFromId(GetUserId(), false), action),
						errhint("Use engram.create_space(), engram.drop_space() or engram.alter_space_owner().")));
	}
	if (truncate)
		return PointerGetDatum(nullptr);
	return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple);
}
