// Re-ranking quantized recall candidates from engram.observations (see
// recall_rerank.hpp).
#include "pg/recall_rerank.hpp"

#include <algorithm>

#include "core/rerank.hpp"

#include "pg/kept_plan.hpp"
#include "pg/postgres.hpp"

namespace {

// Ids per query: one index scan of the primary key each, and a bounded
// number of rows held at once.
constexpr std::size_t k_rerank_batch = 256;

struct Candidate {
	std::int64_t id;
	std::uint32_t index; // into the caller's arrays
};

SPIPlanPtr
read_plan(void)
{
	static SPIPlanPtr plan = nullptr;
	Oid types[2] = {INT4OID, INT8ARRAYOID};
	return kept_plan(plan,
					 "SELECT o.id, o.embedding FROM engram.observations o "
					 "WHERE o.id OPERATOR(pg_catalog.=) ANY ($2) AND o.space_id OPERATOR(pg_catalog.=) $1",
					 2, types);
}

} // namespace

void
rerank_from_table(std::int32_t space_id, engram::core::Metric metric, std::span<const float> cue,
				  std::span<const std::int64_t> ids, std::span<float> distances)
{
	const std::size_t n = std::min(ids.size(), distances.size());
	if (n == 0)
		return;
	auto *sorted = static_cast<Candidate *>(palloc(sizeof(Candidate) * std::min(n, k_rerank_batch)));
	auto *id_datums = static_cast<Datum *>(palloc(sizeof(Datum) * std::min(n, k_rerank_batch)));
	auto *vectors = static_cast<const float **>(palloc(sizeof(float *) * std::min(n, k_rerank_batch)));
	auto *exact = static_cast<float *>(palloc(sizeof(float) * std::min(n, k_rerank_batch)));
	SPI_connect();
	const SPIPlanPtr plan = read_plan();
	// A wide row's embedding is in TOAST and read into a copy: one batch's
	// copies at a time.
	const MemoryContext batch_context =
		AllocSetContextCreate(CurrentMemoryContext, "engram re-rank batch", ALLOCSET_DEFAULT_SIZES);
	for (std::size_t from = 0; from < n; from += k_rerank_batch) {
		const std::size_t count = std::min(k_rerank_batch, n - from);
		for (std::size_t i = 0; i < count; ++i) {
			sorted[i] = Candidate{ids[from + i], static_cast<std::uint32_t>(from + i)};
			id_datums[i] = Int64GetDatum(ids[from + i]);
		}
		std::sort(sorted, sorted + count, [](const Candidate &a, const Candidate &b) { return a.id < b.id; });
		Datum args[2] = {Int32GetDatum(space_id),
						 PointerGetDatum(construct_array(id_datums, static_cast<int>(count), INT8OID,
														 sizeof(std::int64_t), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE))};
		if (SPI_execute_plan(plan, args, nullptr, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read engram.observations");
		// Rows, in any order, matched to their candidates; vectors point into
		// the rows (or their detoasted copies) until the batch ends.
		std::size_t rows = 0;
		std::uint32_t *row_index = static_cast<std::uint32_t *>(palloc(sizeof(std::uint32_t) * (SPI_processed + 1)));
		for (std::uint64_t r = 0; r < SPI_processed; ++r) {
			bool isnull = false;
			const std::int64_t id =
				DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
			const Datum embedding = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull);
			if (isnull)
				continue;
			const MemoryContext outer = MemoryContextSwitchTo(batch_context);
			ArrayType *array = DatumGetArrayTypeP(embedding);
			MemoryContextSwitchTo(outer);
			// The table's check admits only vectors of the space's dimension
			// without nulls; anything else keeps its quantized distance.
			if (ARR_NDIM(array) != 1 || ARR_HASNULL(array) || ARR_ELEMTYPE(array) != FLOAT4OID ||
				static_cast<std::size_t>(ARR_DIMS(array)[0]) != cue.size())
				continue;
			const Candidate *at = std::lower_bound(sorted, sorted + count, id,
												   [](const Candidate &c, std::int64_t v) { return c.id < v; });
			if (at == sorted + count || at->id != id)
				continue;
			vectors[rows] = reinterpret_cast<const float *>(ARR_DATA_PTR(array));
			exact[rows] = distances[at->index];
			row_index[rows] = at->index;
			rows++;
		}
		engram::core::exact_distances(metric, cue, std::span<const float *const>(vectors, rows),
									  std::span<float>(exact, rows));
		for (std::size_t r = 0; r < rows; ++r)
			distances[row_index[r]] = exact[r];
		SPI_freetuptable(SPI_tuptable);
		MemoryContextReset(batch_context);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_finish();
}
