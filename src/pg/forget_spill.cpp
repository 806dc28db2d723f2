// The forget spill (see forget_spill.hpp).
#include "pg/forget_spill.hpp"

#include <algorithm>
#include <cstring>

#include "pg/kept_plan.hpp"
#include "pg/postgres.hpp"
#include "pg/privileges.hpp"

extern "C" {
#include "catalog/namespace.h"
}

void
forget_spill_write(std::uint64_t spill, std::int32_t space_id, std::int32_t chunk,
				   std::span<const engram::core::IdRange> ranges)
{
	static SPIPlanPtr plan = nullptr;
	auto *elements = static_cast<Datum *>(palloc(sizeof(Datum) * 2 * std::max<std::size_t>(ranges.size(), 1)));
	for (std::size_t i = 0; i < ranges.size(); ++i) {
		elements[2 * i] = Int64GetDatum(ranges[i].first);
		elements[2 * i + 1] = Int64GetDatum(ranges[i].last);
	}
	ArrayType *pairs = construct_array(elements, static_cast<int>(2 * ranges.size()), INT8OID, sizeof(std::int64_t),
									   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	const SavedUser saved = elevate_to_extension_owner();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	Oid types[4] = {INT8OID, INT4OID, INT4OID, INT8ARRAYOID};
	kept_plan(plan, "INSERT INTO engram._forget_spill (spill, space_id, chunk, ranges) VALUES ($1, $2, $3, $4)", 4,
			  types);
	Datum args[4] = {Int64GetDatum(static_cast<std::int64_t>(spill)), Int32GetDatum(space_id), Int32GetDatum(chunk),
					 PointerGetDatum(pairs)};
	if (SPI_execute_plan(plan, args, nullptr, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into engram._forget_spill");
	SPI_finish();
	restore_user(saved);
	pfree(pairs);
	pfree(elements);
}

std::size_t
forget_spill_read(std::uint64_t spill, std::int32_t space_id, std::int32_t after, std::int32_t *chunk,
				  engram::core::IdRange *ranges)
{
	static SPIPlanPtr plan = nullptr;
	Oid types[3] = {INT8OID, INT4OID, INT4OID};
	kept_plan(plan,
			  "SELECT chunk, ranges FROM engram._forget_spill WHERE spill OPERATOR(pg_catalog.=) $1 "
			  "AND space_id OPERATOR(pg_catalog.=) $2 AND chunk OPERATOR(pg_catalog.>) $3 ORDER BY chunk LIMIT 1",
			  3, types);
	Datum args[3] = {Int64GetDatum(static_cast<std::int64_t>(spill)), Int32GetDatum(space_id), Int32GetDatum(after)};
	// Not read-only: every read takes a fresh snapshot, which sees the
	// deleting transaction (its record is published once it is visible).
	if (SPI_execute_plan(plan, args, nullptr, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read engram._forget_spill");
	if (SPI_processed == 0)
		return 0;
	bool isnull = false;
	*chunk = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	const Datum value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	ArrayType *pairs = isnull ? nullptr : DatumGetArrayTypeP(value);
	const int items = pairs == nullptr ? 0 : ArrayGetNItems(ARR_NDIM(pairs), ARR_DIMS(pairs));
	if (pairs == nullptr || ARR_NDIM(pairs) != 1 || ARR_ELEMTYPE(pairs) != INT8OID || ARR_HASNULL(pairs) ||
		items % 2 != 0 || static_cast<std::size_t>(items / 2) > k_forget_spill_chunk_ranges)
		elog(ERROR, "chunk %d of spill %llu in engram._forget_spill is not a list of id ranges", *chunk,
			 static_cast<unsigned long long>(spill));
	const auto n = static_cast<std::size_t>(items / 2);
	std::memcpy(ranges, ARR_DATA_PTR(pairs), n * sizeof(engram::core::IdRange));
	if (reinterpret_cast<Pointer>(pairs) != DatumGetPointer(value))
		pfree(pairs);
	SPI_freetuptable(SPI_tuptable);
	return n;
}

void
forget_spill_delete(std::uint64_t spill, std::int32_t space_id)
{
	static SPIPlanPtr plan = nullptr;
	Oid types[2] = {INT8OID, INT4OID};
	kept_plan(plan,
			  "DELETE FROM engram._forget_spill WHERE spill OPERATOR(pg_catalog.=) $1 "
			  "AND space_id OPERATOR(pg_catalog.=) $2",
			  2, types);
	Datum args[2] = {Int64GetDatum(static_cast<std::int64_t>(spill)), Int32GetDatum(space_id)};
	if (SPI_execute_plan(plan, args, nullptr, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from engram._forget_spill");
}

void
forget_spill_clear_seen(void)
{
	const Oid schema = get_namespace_oid("engram", true);
	if (!OidIsValid(schema) || !OidIsValid(get_relname_relid("_forget_spill", schema)))
		return;
	SPIPlanPtr plan = SPI_prepare("DELETE FROM engram._forget_spill", 0, nullptr);
	if (plan == nullptr)
		elog(ERROR, "could not prepare the clearing of engram._forget_spill");
	// With the load's own snapshot: a chunk of a transaction it does not see
	// belongs to a record the drain still stores.
	if (SPI_execute_snapshot(plan, nullptr, nullptr, GetActiveSnapshot(), InvalidSnapshot, false, false, 0) !=
		SPI_OK_DELETE)
		elog(ERROR, "could not clear engram._forget_spill");
	SPI_freeplan(plan);
}
