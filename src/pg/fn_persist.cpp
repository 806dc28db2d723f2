// SQL functions of the graph files: engram.checkpoint(), which has the engram
// writer write every space's file now, and what engram.spaces shows of each
// file (writer.cpp writes them, graph_files.hpp says where).
#include "core/ring.hpp"
#include "pg/guc.hpp"
#include "pg/instance.hpp"
#include "pg/privileges.hpp"
#include "pg/shared.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "catalog/pg_authid.h"
#include "utils/acl.h"
}

namespace {

// How long checkpoint() waits for a writer that does not run.
constexpr int k_writer_absent_ms = 10000;

void
require_checkpoint_role(void)
{
	if (has_privs_of_role(GetUserId(), ROLE_PG_CHECKPOINT))
		return;
	ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("permission denied for engram.checkpoint()"),
					errdetail("Only superusers and roles with privileges of the \"pg_checkpoint\" role may make the "
							  "engram writer write every graph file."),
					errhint("Grant pg_checkpoint to the role, as for CHECKPOINT.")));
}

void
wait_a_little(void)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

} // namespace

// Waits until the rows committed before the call are stored, then until the
// writer has written every ready space whose index changed since its file.
ENGRAM_FUNCTION(engram_checkpoint)
{
	EngramShared *s = shared_require();
	require_checkpoint_role();
	if (RecoveryInProgress())
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("engram.checkpoint() cannot run during recovery"),
						errdetail("engram's workers and writer run only on a primary.")));
	instance_require();
	if (!engram_persist)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("engram.persist is off"),
						errdetail("The engram writer keeps no graph files, so there is nothing to write."),
						errhint("Set engram.persist = on in the server's configuration and reload it.")));
	engram::core::Ring ring = shared_ring();
	const std::uint64_t target = ring.last_generation();
	while (s->load_state.load(std::memory_order_acquire) != LOAD_DONE || ring.published_generation() < target) {
		shared_wake_workers();
		wait_a_little();
	}
	WriterSlot &w = s->writer;
	const std::uint64_t ticket = w.checkpoint_requested.fetch_add(1, std::memory_order_acq_rel) + 1;
	TimestampTz writer_seen = GetCurrentTimestamp();
	while (w.checkpoint_done.load(std::memory_order_acquire) < ticket) {
		if (w.pid.load(std::memory_order_acquire) != 0)
			writer_seen = GetCurrentTimestamp();
		else if (TimestampDifferenceExceeds(writer_seen, GetCurrentTimestamp(), k_writer_absent_ms))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("the engram writer is not running"),
					 errdetail("No engram writer process has run for %d ms.", k_writer_absent_ms),
					 errhint("Check max_worker_processes (engram needs engram.workers + 1 background "
							 "workers) and the server log.")));
		shared_wake_writer();
		wait_a_little();
	}
	if (w.checkpoint_failed.load(std::memory_order_acquire) >= ticket)
		ereport(ERROR, (errcode(ERRCODE_IO_ERROR), errmsg("the engram writer could not write every graph file"),
						errdetail("The indexes in shared memory are unaffected."),
						errhint("The server log says which file failed and why.")));
	PG_RETURN_VOID();
}

// One row per live space: what its graph file holds (engram.spaces).
ENGRAM_FUNCTION(engram_space_files)
{
	shared_require();
	require_view_reader("spaces", "engram._space_files()");
	instance_require();
	InitMaterializedSRF(fcinfo, 0);
	auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	for (const SpaceSlot &slot : directory_slots()) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE)
			continue;
		const SpaceFileState &file = slot.file;
		const TimestampTz written_at = file.written_at.load(std::memory_order_acquire);
		Datum values[5] = {Int32GetDatum(slot.space_id),
						   // Live rows: the file's nodes less those forgotten when it was written.
						   Int64GetDatum(static_cast<std::int64_t>(file.observations.load(std::memory_order_relaxed) -
																   file.forgotten.load(std::memory_order_relaxed))),
						   Int64GetDatum(static_cast<std::int64_t>(file.generation.load(std::memory_order_relaxed))),
						   TimestampTzGetDatum(written_at),
						   Int64GetDatum(static_cast<std::int64_t>(file.bytes.load(std::memory_order_relaxed)))};
		bool nulls[5] = {false, false, false, written_at == 0, false};
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(shared_directory_lock());
	return static_cast<Datum>(0);
}
