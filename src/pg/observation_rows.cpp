// Reading rows of engram.observations back (see observation_rows.hpp).
#include "pg/observation_rows.hpp"

#include <cstring>

extern "C" {
#include "utils/resowner.h"
}

ObservationRow
copy_observation(HeapTuple tuple, TupleDesc desc, std::uint32_t dim, float *vector)
{
	bool isnull = false;
	const std::int64_t id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
	const Datum datum = SPI_getbinval(tuple, desc, 2, &isnull);
	ArrayType *embedding = isnull ? nullptr : DatumGetArrayTypeP(datum);
	if (embedding == nullptr || ARR_NDIM(embedding) != 1 || ARR_HASNULL(embedding) ||
		ARR_ELEMTYPE(embedding) != FLOAT4OID ||
		ArrayGetNItems(ARR_NDIM(embedding), ARR_DIMS(embedding)) != static_cast<int>(dim))
		elog(ERROR, "observation %lld does not hold a vector of %u dimensions", static_cast<long long>(id), dim);
	std::memcpy(vector, ARR_DATA_PTR(embedding), sizeof(float) * dim);
	const float confidence = DatumGetFloat4(SPI_getbinval(tuple, desc, 3, &isnull));
	return {id, isnull ? 0.0f : confidence};
}

bool
run_in_subtransaction(void (*step)(void *), void *arg, char *error, std::size_t error_size)
{
	MemoryContext context = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool finished = false;
	BeginInternalSubTransaction(nullptr);
	MemoryContextSwitchTo(context);
	PG_TRY();
	{
		step(arg);
		ReleaseCurrentSubTransaction();
		finished = true;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(context);
		ErrorData *e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		CurrentResourceOwner = owner;
		if (e->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(e);
		strlcpy(error, e->message, error_size);
		FreeErrorData(e);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(context);
	CurrentResourceOwner = owner;
	return finished;
}
