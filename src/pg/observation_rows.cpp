// Reading rows of engram.observations back (see observation_rows.hpp).
#include "pg/observation_rows.hpp"

#include <algorithm>
#include <cstring>

extern "C" {
#include "utils/resowner.h"
}

void
copy_observations(SPITupleTable *table, std::uint32_t n, std::uint32_t dim, std::uint64_t generation, float *vectors,
				  engram::core::NodeData *rows, TokenBuffer *tokens)
{
	TupleDesc desc = table->tupdesc;
	tokens->count = 0;
	auto *counts = static_cast<std::uint32_t *>(palloc(sizeof(std::uint32_t) * std::max<std::uint32_t>(n, 1)));
	for (std::uint32_t i = 0; i < n; ++i) {
		HeapTuple tuple = table->vals[i];
		bool isnull = false;
		const std::int64_t id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
		const Datum datum = SPI_getbinval(tuple, desc, 2, &isnull);
		ArrayType *embedding = isnull ? nullptr : DatumGetArrayTypeP(datum);
		if (embedding == nullptr || ARR_NDIM(embedding) != 1 || ARR_HASNULL(embedding) ||
			ARR_ELEMTYPE(embedding) != FLOAT4OID ||
			ArrayGetNItems(ARR_NDIM(embedding), ARR_DIMS(embedding)) != static_cast<int>(dim))
			elog(ERROR, "observation %lld does not hold a vector of %u dimensions", static_cast<long long>(id), dim);
		std::memcpy(vectors + std::size_t{i} * dim, ARR_DATA_PTR(embedding), sizeof(float) * dim);
		// A wide row's embedding is in TOAST: its detoasted copy goes at once,
		// so that a long read-back holds one chunk of vectors, not every row's.
		if (PointerGetDatum(embedding) != datum)
			pfree(embedding);
		const float confidence = DatumGetFloat4(SPI_getbinval(tuple, desc, 3, &isnull));
		rows[i] = engram::core::NodeData{};
		rows[i].generation = generation;
		rows[i].label = id;
		rows[i].confidence = isnull ? 0.0f : confidence;
		const Datum observed_at = SPI_getbinval(tuple, desc, 4, &isnull);
		rows[i].observed_at = isnull ? 0 : DatumGetTimestampTz(observed_at);
		const Datum metadata = SPI_getbinval(tuple, desc, 5, &isnull);
		Jsonb *jsonb = isnull ? nullptr : DatumGetJsonbP(metadata);
		counts[i] = metadata_tokens(jsonb, tokens, id);
		if (jsonb != nullptr && PointerGetDatum(jsonb) != metadata)
			pfree(jsonb);
	}
	// The buffer may have moved while it grew: spans are set once it is full.
	std::size_t offset = 0;
	for (std::uint32_t i = 0; i < n; ++i) {
		rows[i].tokens = std::span<const std::uint64_t>(tokens->tokens + offset, counts[i]);
		offset += counts[i];
	}
	pfree(counts);
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
