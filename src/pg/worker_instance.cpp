// Following the installation (see worker_instance.hpp).
//
// Deciding about a record. Each record names its installation. A record of
// the installation the directory serves is stored; a record of another
// database is dropped. Any other record is judged against the catalog as a
// check read it: the check notes the ring's last generation before taking its
// snapshot, and a commit stamped at or below that generation had become
// visible before it was stamped (ring commits happen after the transaction is
// visible). So a record stamped at or below it whose table is not the one the
// check found belongs to a dropped installation and is dropped; a record of
// the table the check found waits until the directory has switched to it (and
// the load from that table, with its snapshot filter, covers it); a record
// stamped later waits for a newer check.
//
// An id-range record is read back from the table by name (and a spilled
// forgets record from engram._forget_spill), so before that the drain makes
// sure the name still means the record's table: a reinstall the last check
// has not seen yet would otherwise lend it another table's rows.
// It never waits for that table's lock: a DROP EXTENSION holding it may be
// waiting for a lock the drain's transaction already holds.
#include "pg/worker_instance.hpp"

#include "core/observation_batch.hpp"
#include "pg/graph_files.hpp"
#include "pg/shared.hpp"
#include "pg/worker_store.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "storage/lmgr.h"
}

namespace {

constexpr int k_check_interval_ms = 1000;
constexpr int k_drop_log_interval_ms = 10000;

// The catalog as the last check read it, and the ring's last generation just
// before that check's snapshot.
engram::core::InstanceId catalog_seen;
std::uint64_t catalog_seen_generation = 0;
TimestampTz checked_at = 0;
bool check_wanted = true;

// Observations dropped since the last log line about them.
std::uint64_t dropped_unlogged = 0;
TimestampTz drop_logged_at = 0;

engram::core::InstanceId
directory_instance(void)
{
	return engram::core::InstanceId::unpacked(shared_state()->instance.load(std::memory_order_acquire));
}

// Reads the installation from the catalog with a fresh snapshot.
void
check_catalog(void)
{
	end_transaction();
	const std::uint64_t generation = shared_ring().last_generation();
	ensure_transaction();
	if (SPI_execute("SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
					"ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
					"WHERE n.nspname OPERATOR(pg_catalog.=) 'engram' "
					"AND c.relname OPERATOR(pg_catalog.=) 'observations' "
					"AND EXISTS (SELECT FROM pg_catalog.pg_extension e "
					"WHERE e.extname OPERATOR(pg_catalog.=) 'engram')",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up engram.observations in the catalog");
	Oid relation = InvalidOid;
	if (SPI_processed == 1) {
		bool isnull = false;
		relation = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	end_transaction();
	catalog_seen = OidIsValid(relation) ? engram::core::InstanceId{MyDatabaseId, relation} : engram::core::InstanceId{};
	catalog_seen_generation = generation;
	checked_at = GetCurrentTimestamp();
	check_wanted = false;
}

// Frees every space of the directory's installation and hands the directory
// to `next` (possibly none), with the load marked needed first, so that no
// caller of `next` is served before its rows are loaded. The caller holds the
// ring's consumer token.
void
adopt(engram::core::InstanceId next, int worker_index)
{
	EngramShared *s = shared_state();
	if (load_filter.active)
		filter_clear(); // a load of the previous installation
	const engram::core::InstanceId previous = directory_instance();
	s->load_state.store(LOAD_NEEDED, std::memory_order_release);
	int freed = 0;
	for (SpaceSlot &slot : directory_slots()) {
		if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE)
			continue;
		// A creation still in progress is one of `next`'s (DROP EXTENSION
		// waits for every transaction that inserted into the old catalog):
		// its slot stays, and the load keeps it for the space its snapshot
		// does not see yet. Freed, the space would commit without a slot.
		if (directory_create_outcome(&slot) == DropOutcome::in_progress)
			continue;
		directory_free(&slot);
		++freed;
	}
	directory_forget_homeless();
	progress_reset();
	// The files belong to the installation that is gone. (At the first start
	// there was none before: the files are this installation's to load.)
	if (previous.valid())
		graph_files_remove_all();
	s->instance.store(next.packed(), std::memory_order_release);
	if (!next.valid())
		ereport(LOG, (errmsg("engram worker %d freed the indexes of %d spaces: the extension was dropped", worker_index,
							 freed)));
	else if (previous.valid())
		ereport(LOG, (errmsg("engram worker %d switched to a new installation of engram (table OID %u); the %d spaces "
							 "of the previous one (table OID %u) were freed",
							 worker_index, next.relation, freed, previous.relation)));
}

enum class TableCheck { same, gone, locked };

// Whether engram.observations is still the table `relation`. Locking the OID
// first makes the name lookup see any drop that committed before it.
TableCheck
check_table(Oid relation)
{
	ensure_transaction();
	if (!ConditionalLockRelationOid(relation, AccessShareLock))
		return TableCheck::locked;
	const Oid schema = get_namespace_oid("engram", true);
	return OidIsValid(schema) && get_relname_relid("observations", schema) == relation ? TableCheck::same
																					   : TableCheck::gone;
}

void
log_drops(std::uint64_t observations, const engram::core::InstanceId &of)
{
	dropped_unlogged += observations;
	const TimestampTz now = GetCurrentTimestamp();
	if (drop_logged_at != 0 && !TimestampDifferenceExceeds(drop_logged_at, now, k_drop_log_interval_ms))
		return;
	ereport(LOG, (errmsg("engram dropped %llu observations of another installation of engram",
						 static_cast<unsigned long long>(dropped_unlogged)),
				  errdetail("The latest came from table OID %u in database OID %u; the workers serve table OID %u in "
							"database OID %u.",
							of.relation, of.database, directory_instance().relation, MyDatabaseId)));
	dropped_unlogged = 0;
	drop_logged_at = now;
}

} // namespace

bool
follow_instance(int worker_index, bool force)
{
	EngramShared *s = shared_state();
	const bool requested = s->instance_check_requested.exchange(0, std::memory_order_acq_rel) != 0;
	if (force || requested || check_wanted ||
		TimestampDifferenceExceeds(checked_at, GetCurrentTimestamp(), k_check_interval_ms))
		check_catalog();
	if (catalog_seen == directory_instance())
		return catalog_seen.valid();
	// The directory changes hands only under the consumer token, and only on
	// a look at the catalog taken while holding it: another worker may have
	// moved the directory on since this worker last looked.
	engram::core::Ring ring = shared_ring();
	const auto token = static_cast<std::uint32_t>(MyProcPid);
	const bool loader = load_filter.active; // the loader holds the token until its load caught up
	if (!loader && !ring.try_acquire_consumer(token)) {
		check_wanted = true; // again next time
		return catalog_seen.valid();
	}
	check_catalog();
	const bool changed = catalog_seen != directory_instance();
	if (changed)
		adopt(catalog_seen, worker_index);
	if (changed || !loader)
		ring.release_consumer(token);
	return catalog_seen.valid();
}

bool
instance_current(void)
{
	return catalog_seen.valid() && catalog_seen == directory_instance();
}

RecordFate
record_fate(const engram::core::RecordView &record)
{
	const std::optional<engram::core::BatchView> batch = engram::core::parse_batch(record.payload);
	if (!batch)
		return RecordFate::store; // store_record reports the damage
	const engram::core::InstanceId of = batch->header.instance;
	if (of.valid() && of == directory_instance()) {
		if (batch->header.kind != engram::core::BatchKind::id_ranges &&
			batch->header.kind != engram::core::BatchKind::spilled_forgets)
			return RecordFate::store;
		const TableCheck table = check_table(of.relation);
		if (table == TableCheck::same)
			return RecordFate::store;
		if (table == TableCheck::locked)
			return RecordFate::later; // at the next turn, after this transaction let its locks go
	}
	if (of.database == MyDatabaseId && (record.generation > catalog_seen_generation || of == catalog_seen)) {
		check_wanted = true;
		SetLatch(MyLatch); // check at once rather than after the idle wait
		return RecordFate::later;
	}
	log_drops(engram::core::observation_count(*batch), of);
	return RecordFate::drop;
}
