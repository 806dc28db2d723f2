// Validation of embeddings on their way into engram.observations. The CHECK
// constraint calls engram._check_embedding for every row of every path
// (INSERT, COPY, observe, observe_batch, replication), so each bad input gets
// one precise error before anything is written; COPY adds the line number.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "pg/privileges.hpp"
#include "pg/vector_input.hpp"

#include "pg/postgres.hpp"

namespace {

// Space ids are never reused within one installation of engram and a space's
// dimension never changes (the catalog's guard sees to both), so a backend may
// remember shapes for as long as engram.space_catalog is the same relation.
constexpr int k_shape_cache_size = 64;
SpaceShape shape_cache[k_shape_cache_size];
int shape_cache_next = 0;
Oid shape_cache_catalog = InvalidOid;

} // namespace

const SpaceShape *
space_shape(std::int32_t space_id)
{
	const Oid catalog = engram_relation("space_catalog");
	if (catalog != shape_cache_catalog) {
		std::memset(shape_cache, 0, sizeof shape_cache);
		shape_cache_catalog = catalog;
	}
	for (const SpaceShape &s : shape_cache)
		if (s.space_id == space_id && s.dim > 0)
			return &s;
	Datum arg = Int32GetDatum(space_id);
	Oid argtype = INT4OID;
	SPI_connect();
	const int rc = SPI_execute_with_args(
		"SELECT dim, name, metric FROM engram.space_catalog WHERE space_id OPERATOR(pg_catalog.=) $1", 1, &argtype,
		&arg, nullptr, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1) {
		SPI_finish();
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("space %d does not exist", space_id),
						errhint("Create it with engram.create_space(), or list spaces in engram.spaces.")));
	}
	bool isnull = false;
	SpaceShape &slot = shape_cache[shape_cache_next];
	shape_cache_next = (shape_cache_next + 1) % k_shape_cache_size;
	slot.space_id = space_id;
	slot.dim = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	strlcpy(slot.name, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), sizeof slot.name);
	slot.cosine = strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3), "cosine") == 0;
	SPI_finish();
	return &slot;
}

ENGRAM_FUNCTION(engram_check_embedding)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(true); // the NOT NULL on space_id reports this
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("embedding must not be null"),
						errhint("Every observation needs a vector.")));
	const SpaceShape *shape = space_shape(PG_GETARG_INT32(0));
	(void) check_vector(PG_GETARG_ARRAYTYPE_P(1), "embedding", shape->name, shape->dim, shape->cosine);
	PG_RETURN_BOOL(true);
}

namespace {

// Checks that a per-row array argument matches the batch's row count.
void
check_row_array(ArrayType *a, const char *what, int rows)
{
	if (ARR_NDIM(a) > 1)
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("%s must be a one-dimensional array", what),
						errdetail("Got an array of %d dimensions.", ARR_NDIM(a))));
	const int n = ARR_NDIM(a) == 0 ? 0 : ARR_DIMS(a)[0];
	if (n != rows)
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("%s has %d elements but embeddings has %d rows", what, n, rows),
						errhint("Pass one %s per row of embeddings, or NULL.", what)));
}

ArrayType *
float4_vector(const float *values, int dim)
{
	const std::size_t bytes = ARR_OVERHEAD_NONULLS(1) + sizeof(float) * dim;
	auto *a = static_cast<ArrayType *>(palloc0(bytes));
	SET_VARSIZE(a, bytes);
	a->ndim = 1;
	a->dataoffset = 0;
	a->elemtype = FLOAT4OID;
	ARR_DIMS(a)[0] = dim;
	ARR_LBOUND(a)[0] = 1;
	std::memcpy(ARR_DATA_PTR(a), values, sizeof(float) * dim);
	return a;
}

} // namespace

// engram._batch_rows(embeddings real[][], contents text[], confidences real[]):
// one row per embedding, for observe_batch's single INSERT ... SELECT.
ENGRAM_FUNCTION(engram_batch_rows)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("embeddings must not be null")));
	ArrayType *embeddings = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(embeddings) != 2)
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("embeddings must be a two-dimensional array"),
						errdetail("Got an array of %d dimensions.", ARR_NDIM(embeddings))));
	if (ARR_HASNULL(embeddings))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("embeddings must not contain nulls")));
	const int rows = ARR_DIMS(embeddings)[0];
	const int dim = ARR_DIMS(embeddings)[1];
	Datum *contents = nullptr;
	bool *content_nulls = nullptr;
	if (!PG_ARGISNULL(1)) {
		ArrayType *a = PG_GETARG_ARRAYTYPE_P(1);
		check_row_array(a, "contents", rows);
		int n = 0;
		deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &contents, &content_nulls, &n);
	}
	bool *confidence_nulls = nullptr;
	Datum *confidence_datums = nullptr;
	if (!PG_ARGISNULL(2)) {
		ArrayType *a = PG_GETARG_ARRAYTYPE_P(2);
		check_row_array(a, "confidences", rows);
		int n = 0;
		deconstruct_array(a, FLOAT4OID, sizeof(float), true, TYPALIGN_INT, &confidence_datums, &confidence_nulls, &n);
	}
	InitMaterializedSRF(fcinfo, 0);
	auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	const auto *values = reinterpret_cast<const float *>(ARR_DATA_PTR(embeddings));
	for (int r = 0; r < rows; ++r) {
		Datum out[4];
		bool nulls[4] = {false, false, false, false};
		out[0] = Int64GetDatum(r + 1);
		out[1] = PointerGetDatum(float4_vector(values + std::size_t{static_cast<std::size_t>(r)} * dim, dim));
		if (contents != nullptr && !content_nulls[r])
			out[2] = contents[r];
		else
			nulls[2] = true;
		if (confidence_datums != nullptr && !confidence_nulls[r])
			out[3] = confidence_datums[r];
		else
			nulls[3] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
	}
	return static_cast<Datum>(0);
}
