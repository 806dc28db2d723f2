// The privilege boundary around engram's shared memory and catalog: who may
// change a space, who may read what the indexes hold, where engram's trigger
// functions may fire, and running fixed SQL as the extension's owner once the
// caller has been checked. Every SQL-callable C function that is not revoked
// from PUBLIC goes through one of these checks (docs/usage.md, "Privileges").
#pragma once

#include "pg/postgres.hpp"

struct SpaceDefinition; // pg/catalog.hpp

// Raises 42501 unless `role` has the privileges of the space's owner
// (superusers do). `hint` says how to do it instead.
void require_space_owner(const SpaceDefinition &space, Oid role, const char *hint);

// OID of the relation engram.<name>; raises if engram is not installed.
Oid engram_relation(const char *name);

// Raises 42501 unless the current user may read engram.observations as a
// SELECT would (privilege, and no row-level security that applies to it):
// for functions that reveal rows or ids. `who` names the function, `denied`
// is the message, `returns` begins the detail ("... rows of engram.observations").
void require_observations_readable(const char *who, const char *denied, const char *returns);
// Raises 42501 unless the current user may observe into or recall from
// engram.observations (INSERT or SELECT): for the generation and waiting
// functions, which reveal no rows.
void require_observations_user(const char *function);
// Raises 42501 unless the current user may SELECT the view engram.<view>:
// for the functions behind a view, since a view checks EXECUTE on them as
// its reader, not as its owner.
void require_view_reader(const char *view, const char *function);

// The trigger data of a call; raises 39P01 if the function was not called as
// a trigger.
TriggerData *require_trigger_call(FunctionCallInfo fcinfo, const char *function);
// Raises 39P01 unless the trigger fires on engram.<table> itself (compared
// by OID, so a table of the same name elsewhere does not pass).
void require_trigger_relation(const TriggerData *trigdata, const char *table, const char *function);
// Raises 39P01 unless the relation's column `name` exists with type `type`;
// returns its number.
AttrNumber require_column(TupleDesc desc, const char *name, Oid type, const char *function);
[[noreturn]] void report_trigger_event(const char *function, const char *expected);

// Whether the current user owns engram's tables (engram's own functions run
// as it once they have checked their caller) or is a superuser.
bool acting_as_extension_owner(void);

// Runs as the owner of engram's tables until restore_user: for the fixed,
// fully qualified SQL of a function whose caller was checked first. An error
// in between needs no cleanup: aborting the (sub)transaction restores the user.
struct SavedUser {
	Oid user;
	int context;
};
SavedUser elevate_to_extension_owner(void);
void restore_user(const SavedUser &saved);
