// The privilege checks and the elevation of engram's C functions (see
// privileges.hpp).
#include "pg/catalog.hpp"
#include "pg/privileges.hpp"

#include <cstring>

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "utils/acl.h"
#include "utils/rls.h"
#include "utils/syscache.h"
}

namespace {

const char *
role_name(Oid role)
{
	const char *name = GetUserNameFromId(role, true);
	return name != nullptr ? name : psprintf("with OID %u (dropped)", role);
}

Oid
extension_owner(void)
{
	const Oid relid = engram_relation("space_catalog");
	HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	const Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

} // namespace

void
require_space_owner(const SpaceDefinition &space, Oid role, const char *hint)
{
	if (has_privs_of_role(role, space.owner))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("must be owner of space \"%s\"", space.name),
			 errdetail("Space \"%s\" belongs to role %s.", space.name, role_name(space.owner)), errhint("%s", hint)));
}

Oid
engram_relation(const char *name)
{
	const Oid relid = get_relname_relid(name, get_namespace_oid("engram", false));
	if (!OidIsValid(relid))
		elog(ERROR, "relation engram.%s does not exist", name);
	return relid;
}

void
require_observations_readable(const char *who, const char *denied, const char *returns)
{
	const Oid relid = engram_relation("observations");
	const Oid user = GetUserId();
	if (pg_class_aclcheck(relid, user, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("%s", denied),
				 errdetail("%s rows of engram.observations, which role \"%s\" may not read.", returns, role_name(user)),
				 errhint("Grant SELECT on engram.observations to the role.")));
	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("%s cannot apply row-level security", who),
						errdetail("Row-level security on engram.observations applies to role \"%s\", and %s reads "
								  "the index in shared memory, where policies cannot be evaluated.",
								  role_name(user), who),
						errhint("%s as a role that bypasses row-level security, or disable it on engram.observations.",
								strcmp(who, "recall") == 0 ? "Recall" : "Call it")));
}

void
require_observations_user(const char *function)
{
	const Oid relid = engram_relation("observations");
	const Oid user = GetUserId();
	// pg_class_aclcheck passes if the role holds any of the privileges asked for.
	if (pg_class_aclcheck(relid, user, ACL_INSERT | ACL_SELECT) == ACLCHECK_OK)
		return;
	ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("permission denied for %s", function),
					errdetail("It serves roles that observe into or recall from engram.observations, and role \"%s\" "
							  "may do neither.",
							  role_name(user)),
					errhint("Grant INSERT or SELECT on engram.observations to the role.")));
}

void
require_view_reader(const char *view, const char *function)
{
	const Oid user = GetUserId();
	if (pg_class_aclcheck(engram_relation(view), user, ACL_SELECT) == ACLCHECK_OK)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("permission denied for %s", function),
			 errdetail("It reports what view engram.%s shows, which role \"%s\" may not read.", view, role_name(user)),
			 errhint("Grant SELECT on engram.%s to the role (members of pg_monitor have it).", view)));
}

TriggerData *
require_trigger_call(FunctionCallInfo fcinfo, const char *function)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("%s must be called as a trigger", function)));
	return reinterpret_cast<TriggerData *>(fcinfo->context);
}

void
require_trigger_relation(const TriggerData *trigdata, const char *table, const char *function)
{
	if (RelationGetRelid(trigdata->tg_relation) == engram_relation(table))
		return;
	ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					errmsg("%s may only fire on engram.%s", function, table),
					errdetail("It was fired by a trigger on \"%s\".", RelationGetRelationName(trigdata->tg_relation)),
					errhint("Drop that trigger; engram installs its own triggers.")));
}

AttrNumber
require_column(TupleDesc desc, const char *name, Oid type, const char *function)
{
	for (int i = 0; i < desc->natts; ++i) {
		const Form_pg_attribute att = TupleDescAttr(desc, i);
		if (att->attisdropped || strcmp(NameStr(att->attname), name) != 0)
			continue;
		if (att->atttypid != type)
			ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
							errmsg("%s found column \"%s\" of type %s", function, name, format_type_be(att->atttypid)),
							errdetail("It reads \"%s\" as %s.", name, format_type_be(type))));
		return att->attnum;
	}
	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED), errmsg("%s found no column \"%s\"", function, name)));
	pg_unreachable();
}

void
report_trigger_event(const char *function, const char *expected)
{
	ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED), errmsg("%s must fire %s", function, expected),
					errhint("Drop that trigger; engram installs its own triggers.")));
	pg_unreachable();
}

bool
acting_as_extension_owner(void)
{
	const Oid user = GetUserId();
	return user == extension_owner() || superuser_arg(user);
}

SavedUser
elevate_to_extension_owner(void)
{
	SavedUser saved;
	GetUserIdAndSecContext(&saved.user, &saved.context);
	SetUserIdAndSecContext(extension_owner(),
						   saved.context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	return saved;
}

void
restore_user(const SavedUser &saved)
{
	SetUserIdAndSecContext(saved.user, saved.context);
}
