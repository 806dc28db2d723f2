// Reading engram.space_catalog (see catalog.hpp).
#include "pg/catalog.hpp"

#include <algorithm>
#include <cstring>

#include "pg/kept_plan.hpp"
#include "pg/postgres.hpp"
#include "pg/privileges.hpp"

namespace {

// Every column, read by name in space_definition(): a catalog older than
// 0.5.0 has no column storage (its spaces are f32), so no list names it.
#define SPACE_COLUMNS "*"

// Space ids are never reused within one installation of engram and a space's
// definition never changes (the catalog's guard sees to both), so a backend
// may remember rows for as long as engram.space_catalog is the same relation.
constexpr int k_remembered_spaces = 64;
SpaceDefinition remembered[k_remembered_spaces];
int remembered_next = 0;
Oid remembered_catalog = InvalidOid;

// The value of column `name` of the row, checked for its type, so that only
// what engram.space_catalog holds is read.
Datum
column(HeapTuple tuple, TupleDesc desc, const char *name, Oid type, bool *isnull)
{
	const int attno = SPI_fnumber(desc, name);
	if (attno <= 0 || TupleDescAttr(desc, attno - 1)->atttypid != type)
		elog(ERROR, "engram.space_catalog has no column %s of the expected type", name);
	return heap_getattr(tuple, attno, desc, isnull);
}

// Runs one of the lookups of a single space, each planned once per backend.
bool
lookup(SPIPlanPtr &plan, const char *sql, Oid argtype, Datum arg, bool read_only, SpaceDefinition *out)
{
	SPI_connect();
	kept_plan(plan, sql, 1, &argtype);
	if (SPI_execute_plan(plan, &arg, nullptr, read_only, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read engram.space_catalog");
	const bool found = SPI_processed == 1;
	if (found)
		*out = space_definition(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
	SPI_finish();
	return found;
}

} // namespace

std::optional<engram::core::Metric>
metric_named(const char *name)
{
	if (strcmp(name, "l2") == 0)
		return engram::core::Metric::l2;
	if (strcmp(name, "ip") == 0)
		return engram::core::Metric::inner_product;
	if (strcmp(name, "cosine") == 0)
		return engram::core::Metric::cosine;
	return std::nullopt;
}

std::optional<engram::core::Encoding>
encoding_named(const char *name)
{
	if (strcmp(name, "f32") == 0)
		return engram::core::Encoding::float32;
	if (strcmp(name, "f16") == 0)
		return engram::core::Encoding::float16;
	if (strcmp(name, "sq8") == 0)
		return engram::core::Encoding::sq8;
	return std::nullopt;
}

const char *
encoding_name(engram::core::Encoding encoding)
{
	switch (encoding) {
	case engram::core::Encoding::float32:
		return "f32";
	case engram::core::Encoding::float16:
		return "f16";
	case engram::core::Encoding::sq8:
		break;
	}
	return "sq8";
}

SpaceDefinition
space_definition(HeapTuple tuple, TupleDesc desc)
{
	bool isnull[8] = {};
	SpaceDefinition row{};
	row.space_id = DatumGetInt32(column(tuple, desc, "space_id", INT4OID, &isnull[0]));
	const Datum name = column(tuple, desc, "name", TEXTOID, &isnull[1]);
	row.dim = static_cast<std::uint32_t>(DatumGetInt32(column(tuple, desc, "dim", INT4OID, &isnull[2])));
	const Datum metric = column(tuple, desc, "metric", TEXTOID, &isnull[3]);
	row.m = static_cast<std::uint32_t>(DatumGetInt32(column(tuple, desc, "m", INT4OID, &isnull[4])));
	row.ef_construction =
		static_cast<std::uint32_t>(DatumGetInt32(column(tuple, desc, "ef_construction", INT4OID, &isnull[5])));
	row.owner = DatumGetObjectId(column(tuple, desc, "owner", REGROLEOID, &isnull[6]));
	const bool has_storage = SPI_fnumber(desc, "storage") > 0;
	const Datum storage = has_storage ? column(tuple, desc, "storage", TEXTOID, &isnull[7]) : Datum(0);
	for (bool null : isnull)
		if (null)
			elog(ERROR, "engram.space_catalog holds a space with a null definition");
	strlcpy(row.name, TextDatumGetCString(name), sizeof row.name);
	// The workers have always indexed a metric they do not know as cosine.
	row.metric = metric_named(TextDatumGetCString(metric)).value_or(engram::core::Metric::cosine);
	// The catalog's check constraint admits only known names; a space
	// created before storage existed (no column) is f32.
	const std::optional<engram::core::Encoding> encoding = has_storage ? encoding_named(TextDatumGetCString(storage))
																	   : engram::core::Encoding::float32;
	if (!encoding)
		elog(ERROR, "engram.space_catalog holds space \"%s\" with an unknown storage", row.name);
	row.encoding = *encoding;
	return row;
}

SpaceDefinition
space_named(const char *name)
{
	static SPIPlanPtr plan = nullptr;
	SpaceDefinition space;
	if (!lookup(plan, "SELECT " SPACE_COLUMNS " FROM engram.space_catalog WHERE name OPERATOR(pg_catalog.=) $1",
				TEXTOID, CStringGetTextDatum(name), true, &space))
		report_unknown_space(name);
	return space;
}

bool
space_by_id(std::int32_t space_id, SpaceDefinition *out, CatalogSnapshot snapshot)
{
	static SPIPlanPtr plan = nullptr;
	return lookup(plan, "SELECT " SPACE_COLUMNS " FROM engram.space_catalog WHERE space_id OPERATOR(pg_catalog.=) $1",
				  INT4OID, Int32GetDatum(space_id), snapshot == CatalogSnapshot::statement, out);
}

void
report_unknown_space(const char *name)
{
	ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("space \"%s\" does not exist", name),
					errhint("Create it with engram.create_space(), or list spaces in engram.spaces.")));
	pg_unreachable();
}

const SpaceDefinition *
remembered_space(std::int32_t space_id)
{
	const Oid catalog = engram_relation("space_catalog");
	if (catalog != remembered_catalog) {
		for (SpaceDefinition &s : remembered)
			s = SpaceDefinition{};
		remembered_catalog = catalog;
	}
	for (const SpaceDefinition &s : remembered)
		if (s.space_id == space_id && s.dim > 0)
			return &s;
	SpaceDefinition row;
	if (!space_by_id(space_id, &row))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("space %d does not exist", space_id),
						errhint("Create it with engram.create_space(), or list spaces in engram.spaces.")));
	SpaceDefinition &slot = remembered[remembered_next];
	remembered_next = (remembered_next + 1) % k_remembered_spaces;
	slot = row;
	return &slot;
}

SpaceDefinition *
all_spaces(std::uint64_t *count)
{
	SPI_connect();
	if (SPI_execute("SELECT " SPACE_COLUMNS " FROM engram.space_catalog ORDER BY space_id", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read engram.space_catalog");
	*count = SPI_processed;
	auto *rows =
		static_cast<SpaceDefinition *>(SPI_palloc(sizeof(SpaceDefinition) * std::max<std::uint64_t>(*count, 1)));
	for (std::uint64_t i = 0; i < *count; ++i)
		rows[i] = space_definition(SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
	SPI_finish();
	return rows;
}

bool
lock_space_row(SpaceDefinition &space)
{
	Oid argtype = INT4OID;
	Datum arg = Int32GetDatum(space.space_id);
	if (SPI_execute_with_args(
			"SELECT owner FROM engram.space_catalog WHERE space_id OPERATOR(pg_catalog.=) $1 FOR UPDATE", 1, &argtype,
			&arg, nullptr, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock space \"%s\"", space.name);
	if (SPI_processed != 1)
		return false;
	bool isnull = false;
	space.owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return true;
}
