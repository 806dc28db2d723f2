// Validation of embeddings on their way into engram.observations. The CHECK
// constraint calls engram._check_embedding for every row of every path
// (INSERT, COPY, observe, observe_batch, replication), so each bad input gets
// one precise error before anything is written; COPY adds the line number.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "pg/catalog.hpp"
#include "pg/vector_input.hpp"

#include "pg/postgres.hpp"

ENGRAM_FUNCTION(engram_check_embedding)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(true); // the NOT NULL on space_id reports this
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("embedding must not be null"),
						errhint("Every observation needs a vector.")));
	const SpaceDefinition *space = remembered_space(PG_GETARG_INT32(0));
	(void) check_vector(PG_GETARG_ARRAYTYPE_P(1), "embedding", space->name, static_cast<int>(space->dim),
						space->metric == engram::core::Metric::cosine);
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
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
						errmsg("%s has %d elements but embeddings has %d rows", what, n, rows),
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
