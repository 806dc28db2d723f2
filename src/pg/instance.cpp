// Which installation a backend belongs to, and the refusals that keep shared
// state to its own installation (see instance.hpp). Every function that
// answers from shared memory calls instance_require(): after a reinstall the
// directory still holds the previous installation's spaces until a worker
// notices, and their space ids and observation ids would mean other rows.
#include "pg/instance.hpp"

#include <cstring>

#include "pg/guc.hpp"
#include "pg/shared.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
}

namespace {

// How long a caller waits for the workers to switch to its installation.
constexpr int k_instance_wait_ms = 10000;

bool
instance_matches(engram::core::InstanceId mine)
{
	return instance_shared() == mine;
}

} // namespace

engram::core::InstanceId
instance_of_caller(void)
{
	const Oid schema = get_namespace_oid("engram", true);
	const Oid relation = OidIsValid(schema) ? get_relname_relid("observations", schema) : InvalidOid;
	return {MyDatabaseId, relation};
}

engram::core::InstanceId
instance_shared(void)
{
	return engram::core::InstanceId::unpacked(shared_require()->instance.load(std::memory_order_acquire));
}

void
instance_require_database(void)
{
	// MyDatabaseId never changes in a backend and engram.database only at a restart.
	static int verdict = -1;
	if (verdict < 0) {
		const char *name = get_database_name(MyDatabaseId);
		verdict = name != nullptr && strcmp(name, engram_database) == 0 ? 1 : 0;
	}
	if (verdict == 1)
		return;
	const char *name = get_database_name(MyDatabaseId);
	ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					errmsg("engram can only be used in database \"%s\"", engram_database),
					errdetail("This is database \"%s\". engram's workers and shared memory serve the one database that "
							  "engram.database names; another database's spaces would be mixed with its spaces.",
							  name != nullptr ? name : "?"),
					errhint("Connect to database \"%s\", or set engram.database = '%s' in postgresql.conf and restart "
							"the server.",
							engram_database, name != nullptr ? name : "?")));
}

void
instance_require(void)
{
	instance_require_database();
	const engram::core::InstanceId mine = instance_of_caller();
	if (instance_matches(mine))
		return;
	EngramShared *s = shared_require();
	const TimestampTz started = GetCurrentTimestamp();
	while (!instance_matches(mine)) {
		if (TimestampDifferenceExceeds(started, GetCurrentTimestamp(), k_instance_wait_ms))
			break;
		s->instance_check_requested.store(1, std::memory_order_release);
		shared_wake_workers();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	const engram::core::InstanceId shared = instance_shared();
	if (shared == mine)
		return;
	if (!shared.valid())
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("the engram workers have not taken up this installation of engram"),
						errdetail("Waited %d ms for a worker to load engram.observations (OID %u) into shared memory.",
								  k_instance_wait_ms, mine.relation),
						errhint("Check that the workers run (SELECT * FROM engram.workers) and retry; an installation "
								"created in this transaction is taken up only after it commits.")));
	ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					errmsg("engram's shared memory belongs to another installation of engram"),
					errdetail("The indexes in shared memory were built for table OID %u; this installation's "
							  "engram.observations has OID %u, and the workers did not switch to it within %d ms.",
							  shared.relation, mine.relation, k_instance_wait_ms),
					errhint("Check that the workers run (SELECT * FROM engram.workers) and retry; an installation "
							"created in this transaction is taken up only after it commits.")));
}

void
instance_require_loaded(void)
{
	instance_require();
	const EngramShared *s = shared_require();
	while (s->load_state.load(std::memory_order_acquire) != LOAD_DONE) {
		shared_wake_workers();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}
