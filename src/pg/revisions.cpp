// Revisions of the spaces' rows (see revisions.hpp). Every function runs in
// the caller's transaction, with an active snapshot and SPI connected.
#include "pg/revisions.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "catalog/namespace.h"
}

namespace {

bool
revisions_exist(void)
{
	const Oid schema = get_namespace_oid("engram", true);
	return OidIsValid(schema) && OidIsValid(get_relname_relid("revisions", schema));
}

std::int64_t
query_int8(const char *sql, std::int32_t space_id, std::int64_t bound)
{
	Oid types[2] = {INT4OID, INT8OID};
	Datum args[2] = {Int32GetDatum(space_id), Int64GetDatum(bound)};
	if (SPI_execute_with_args(sql, 2, types, args, nullptr, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read engram.revisions");
	bool isnull = false;
	const Datum value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(value);
}

} // namespace

bool
space_revision(std::int32_t space_id, std::int64_t *revision)
{
	*revision = 0;
	if (!revisions_exist())
		return false;
	*revision = query_int8("SELECT pg_catalog.max(revision) FROM engram.revisions "
						   "WHERE space_id OPERATOR(pg_catalog.=) $1 AND $2 IS NOT NULL",
						   space_id, 0);
	return true;
}

bool
space_revised_after(std::int32_t space_id, std::int64_t revision)
{
	if (!revisions_exist())
		return false;
	return query_int8("SELECT pg_catalog.count(*) FROM (SELECT 1 FROM engram.revisions "
					  "WHERE space_id OPERATOR(pg_catalog.=) $1 AND revision OPERATOR(pg_catalog.>) $2 LIMIT 1) r",
					  space_id, revision) > 0;
}

void
prune_revisions(std::int32_t space_id, std::int64_t revision)
{
	if (!revisions_exist())
		return;
	Oid types[2] = {INT4OID, INT8OID};
	Datum args[2] = {Int32GetDatum(space_id), Int64GetDatum(revision)};
	if (SPI_execute_with_args("DELETE FROM engram.revisions WHERE space_id OPERATOR(pg_catalog.=) $1 "
							  "AND revision OPERATOR(pg_catalog.<=) $2",
							  2, types, args, nullptr, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not prune engram.revisions");
}

void
clear_revisions(void)
{
	if (revisions_exist() && SPI_execute("DELETE FROM engram.revisions", false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not clear engram.revisions");
}
