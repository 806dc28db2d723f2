// Snapshot recall, straight from shared memory: engram.recall,
// engram.current_generation, engram.wait_linked and engram._rebuild.
//
// The snapshot. A recall runs at one generation G: `as_of`, or else the
// latest published generation, which covers every commit the workers have
// stored (published generations only ever cover stored records, see
// core/ring.hpp). Read-your-writes: before choosing G, a session waits until
// its own last commit is published, which takes one drain (the commit woke
// the workers), not a link. The result is the k nearest among exactly the
// space's observations with generation <= G: the graph search over linked
// nodes merged with an exact scan of the nodes stored but not linked yet
// (HnswGraph::snapshot_search).
//
// Privileges. Recall reads shared memory, not the table, so it checks what a
// SELECT on engram.observations would: the caller needs SELECT on it, and a
// caller subject to row-level security on it is refused, since recall cannot
// evaluate policies.
//
// Installations. Every function here first makes sure that shared memory
// holds the caller's installation (pg/instance.hpp). Recall does so after
// looking the space up, whose lock on engram.space_catalog keeps the
// installation from being dropped until the recall's transaction ends.
//
// Pins. Between pinning the graph and letting it go, nothing here may raise
// a PostgreSQL error: results go into memory allocated before the pin, and a
// C++ exception unwinds the pin before the guard (pg/boundary.hpp) raises it.
//
// Quantized spaces. A space stored as sq8 is searched for more candidates
// than asked (rerank_candidates), which are ranked again by their exact
// distances to the cue, read from engram.observations once the pin is let go
// (pg/recall_rerank.hpp), and then cut to k (by score, if scored). An f16
// space answers from its graph: its distances are close enough.
//
// Interrupts. The exact scan over a large unlinked tail can take long, so the
// search reads InterruptPending as it goes (SearchParams::interrupt) and stops
// when a signal raised it; the recall lets go of the pin and only then calls
// CHECK_FOR_INTERRUPTS(), which raises the cancel or timeout error. If the
// interrupt turns out to need no error (a barrier, say), the search runs again.
#include <algorithm>
#include <cmath>
#include <memory>
#include <new>

#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"
#include "pg/capture.hpp"
#include "pg/guc.hpp"
#include "pg/instance.hpp"
#include "pg/metadata_tokens.hpp"
#include "pg/metrics.hpp"
#include "pg/quarantine.hpp"
#include "pg/recall_rerank.hpp"
#include "pg/shared.hpp"

#include "pg/catalog.hpp"
#include "pg/postgres.hpp"
#include "pg/privileges.hpp"
#include "pg/vector_input.hpp"

namespace {

// How long a recall waits for the workers to publish the caller's own commit.
constexpr int k_publish_wait_ms = 10000;

struct Hit {
	std::int64_t id;
	float distance;
	float confidence;
	std::uint64_t generation;
	std::int64_t observed_at;
};

// How many candidates a recall of k from a space of this storage re-ranks
// by exact distance; 0 for none. Measured at m 16, ef_search 128 and
// ef_construction 200 and 100 (test/bench/encoding_bench.cpp and
// docs/architecture.md): f16 loses at most 0.001 of recall@10 to f32 on
// fashion-mnist and glove100 and re-ranking gains nothing, so f16 answers
// from the graph alone; sq8 loses 0.010 on glove100 (0.956 against 0.966 at
// 200, 0.951 against 0.962 at 100), and re-ranking 2k candidates already
// wins back all but 0.001 of it. sq8 re-ranks 4k (twice that), but never
// more than ef beyond k.
std::uint32_t
rerank_candidates(engram::core::Encoding encoding, std::uint32_t k, std::uint32_t ef)
{
	if (encoding != engram::core::Encoding::sq8)
		return 0;
	return std::min(4 * k, k + ef);
}

// What narrows and orders a recall besides the cue: the arguments after
// min_confidence (absent when the catalog still declares the 0.3.0 recall).
struct RecallOptions {
	TokenBuffer filter_tokens;
	engram::core::AttributeFilter filter;
	bool filtered = false;
	engram::core::Scoring scoring;
	bool scored = false;
};

RecallOptions
recall_options(FunctionCallInfo fcinfo)
{
	RecallOptions o;
	const int nargs = PG_NARGS();
	if (nargs > 5 && !PG_ARGISNULL(5)) {
		o.filter_tokens = filter_tokens(PG_GETARG_JSONB_P(5));
		o.filter.tokens = std::span<const std::uint64_t>(o.filter_tokens.tokens, o.filter_tokens.count);
		o.filtered = true;
	}
	if (nargs > 6 && !PG_ARGISNULL(6)) {
		o.filter.observed_after = PG_GETARG_TIMESTAMPTZ(6);
		o.filtered = true;
	}
	if (nargs > 7 && !PG_ARGISNULL(7)) {
		o.filter.observed_before = PG_GETARG_TIMESTAMPTZ(7);
		o.filtered = true;
	}
	if (nargs > 8 && !PG_ARGISNULL(8)) {
		const Interval *half_life = PG_GETARG_INTERVAL_P(8);
		const double usec =
			static_cast<double>(half_life->time) +
			(static_cast<double>(half_life->day) + static_cast<double>(half_life->month) * DAYS_PER_MONTH) *
				static_cast<double>(USECS_PER_DAY);
		if (!(usec > 0))
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("recency_half_life must be positive"),
							errdetail("It was %s.",
									  DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(half_life)))),
							errhint("Pass the age at which an observation's score halves, e.g. interval '7 days'.")));
		o.scoring.half_life = usec;
		o.scored = true;
	}
	if (nargs > 9 && !PG_ARGISNULL(9)) {
		const float weight = PG_GETARG_FLOAT4(9);
		if (!(weight >= 0.0f && weight <= 1.0f))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("confidence_weight must be between 0 and 1"),
					 errdetail("confidence_weight was %g.", static_cast<double>(weight))));
		o.scoring.confidence_weight = weight;
		o.scored = o.scored || weight > 0.0f;
	}
	o.scoring.now = GetCurrentTransactionStartTimestamp();
	return o;
}

engram::core::SearchContext *
search_context(void)
{
	static std::unique_ptr<engram::core::SearchContext> context;
	if (!context)
		context = std::make_unique<engram::core::SearchContext>();
	return context.get();
}

// Whether a snapshot at `target` can be served: the workers have loaded the
// spaces from the table since the server started (before that, the indexes
// hold only part of what is committed) and have published `target`.
bool
servable(std::uint64_t target)
{
	const EngramShared *s = shared_state();
	if (s->load_state.load(std::memory_order_acquire) != LOAD_DONE)
		return false;
	const std::uint64_t floor = s->loaded_generation.load(std::memory_order_acquire);
	return shared_ring().published_generation() >= std::max(target, floor);
}

// Waits until servable(target); false on timeout.
bool
wait_published(std::uint64_t target, int timeout_ms)
{
	if (servable(target))
		return true;
	shared_wake_workers();
	const TimestampTz started = GetCurrentTimestamp();
	// One drain is usually well under a millisecond: poll briefly first.
	for (int i = 0; i < 40 && !servable(target); ++i)
		pg_usleep(25);
	while (!servable(target)) {
		if (TimestampDifferenceExceeds(started, GetCurrentTimestamp(), timeout_ms))
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

// Waits for the workers to publish `target` (a snapshot asked for, or the
// caller's own last commit), or raises the error that they are stuck.
void
require_published(std::uint64_t target)
{
	if (wait_published(target, k_publish_wait_ms))
		return;
	if (shared_state()->load_state.load(std::memory_order_acquire) != LOAD_DONE)
		ereport(ERROR, (errcode(ERRCODE_ENGRAM_OVERLOADED),
						errmsg("the workers are still loading the spaces from engram.observations"),
						errdetail("Waited %d ms. After a start or a crash the indexes are rebuilt from the table "
								  "before recalls are answered.",
								  k_publish_wait_ms),
						errhint("Retry shortly; the server log says when loading has finished.")));
	ereport(ERROR, (errcode(ERRCODE_ENGRAM_OVERLOADED),
					errmsg("the workers have not stored generation %llu yet", static_cast<unsigned long long>(target)),
					errdetail("Waited %d ms for the observations committed at or before it.", k_publish_wait_ms),
					errhint("Check engram.workers and engram.pressure().")));
}

std::uint64_t
check_generation(std::int64_t generation)
{
	if (generation < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("generation must not be negative")));
	// After a start the generation counter continues from the WAL only once
	// the workers have loaded the spaces: until then every older generation
	// would look like one from the future.
	require_published(0);
	const std::uint64_t latest = shared_ring().last_generation();
	if (static_cast<std::uint64_t>(generation) > latest)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("generation %lld is in the future", static_cast<long long>(generation)),
						errdetail("The latest committed generation is %llu.", static_cast<unsigned long long>(latest)),
						errhint("Use engram.current_generation() to learn the current one.")));
	return static_cast<std::uint64_t>(generation);
}

// The snapshots a space's index cannot answer (SpaceSlot's gap): rows
// loaded from the table carry the load's generation (the table keeps no
// other), so the snapshots from just after the last generation the index
// held up to that load cannot be told apart; a compaction erased
// forgotten rows that older snapshots would have seen; and rows of a bulk
// transaction were deleted or changed before the workers read them back
// (worker_store.cpp). Read by a recall after it pinned the graph it answers
// from, under the directory lock: a compaction widens the gap before its
// graph becomes current.
struct SnapshotGap {
	std::uint64_t from = 0, to = 0;
};

SnapshotGap
snapshot_gap(const SpaceSlot *slot)
{
	if (slot == nullptr)
		return {0, shared_state()->loaded_generation.load(std::memory_order_acquire)};
	return {slot->snapshot_gap_from.load(std::memory_order_acquire),
			slot->snapshot_gap_to.load(std::memory_order_acquire)};
}

[[noreturn]] void
report_unanswerable(SnapshotGap gap, std::uint64_t as_of)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("generation %llu is older than the index can answer", static_cast<unsigned long long>(as_of)),
			 errdetail("The index cannot answer snapshots from generation %llu up to generation %llu: rows "
					   "committed then were loaded from engram.observations at a later generation (after a server "
					   "start, a crash restart or a reinstall, for rows no graph file held), or forgotten rows "
					   "those snapshots saw have been erased (engram.erase_within), or rows of a large transaction "
					   "changed before the workers read them back.",
					   static_cast<unsigned long long>(gap.from), static_cast<unsigned long long>(gap.to)),
			 errhint("Use as_of => %llu or later, or leave as_of NULL for the latest generation.",
					 static_cast<unsigned long long>(gap.to))));
	pg_unreachable();
}

// Re-ranks the candidates of a quantized space by exact distance (or by a
// score over exact distances) and keeps the first k; returns how many.
std::size_t
rerank_hits(const SpaceDefinition &info, std::span<const float> cue, const RecallOptions &options, Hit *hits,
			std::size_t found, std::size_t k)
{
	auto *ids = static_cast<std::int64_t *>(palloc(sizeof(std::int64_t) * std::max<std::size_t>(found, 1)));
	auto *distances = static_cast<float *>(palloc(sizeof(float) * std::max<std::size_t>(found, 1)));
	for (std::size_t i = 0; i < found; ++i) {
		ids[i] = hits[i].id;
		distances[i] = hits[i].distance;
	}
	rerank_from_table(info.space_id, info.metric, cue, std::span<const std::int64_t>(ids, found),
					  std::span<float>(distances, found));
	for (std::size_t i = 0; i < found; ++i)
		hits[i].distance = distances[i];
	// Ties go to the lower id, so that the same rows give the same answer.
	const auto nearer = [](const Hit &a, const Hit &b) {
		return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
	};
	if (!options.scored) {
		std::sort(hits, hits + found, nearer);
		return std::min(found, k);
	}
	const auto score_of = [&](const Hit &h) {
		return engram::core::score(info.metric, h.distance, h.confidence, h.observed_at, options.scoring);
	};
	std::sort(hits, hits + found, [&](const Hit &a, const Hit &b) {
		const float sa = score_of(a), sb = score_of(b);
		return sa > sb || (sa == sb && nearer(a, b));
	});
	return std::min(found, k);
}

} // namespace

ENGRAM_FUNCTION(engram_recall)
{
	const std::uint64_t started_us = metrics_recall_start();
	shared_require();
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("space name must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("cue must not be null"),
						errhint("Pass the vector to recall the nearest observations of.")));
	if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 1 || PG_GETARG_INT32(2) > k_engram_max_k)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("k must be between 1 and %d", k_engram_max_k),
						errdetail("k was %s.", PG_ARGISNULL(2) ? "NULL" : psprintf("%d", PG_GETARG_INT32(2))),
						errhint("Page through larger result sets by narrowing the cue or raising min_confidence.")));
	const int k = PG_GETARG_INT32(2);
	const float min_confidence = PG_ARGISNULL(4) ? 0.0f : PG_GETARG_FLOAT4(4);
	if (!(min_confidence >= 0.0f && min_confidence <= 1.0f))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("min_confidence must be between 0 and 1"),
						errdetail("min_confidence was %g.", static_cast<double>(min_confidence))));
	const char *space = text_to_cstring(PG_GETARG_TEXT_PP(0));
	require_observations_readable("recall", psprintf("permission denied to recall from space \"%s\"", space),
								  "Recall returns");
	const SpaceDefinition info = space_named(space);
	instance_require();
	const RecallOptions options = recall_options(fcinfo);
	const int dim = static_cast<int>(info.dim);
	const float *cue =
		check_vector(PG_GETARG_ARRAYTYPE_P(1), "cue", space, dim, info.metric == engram::core::Metric::cosine);

	const bool pinned_snapshot = !PG_ARGISNULL(3);
	const std::uint64_t as_of = pinned_snapshot ? check_generation(PG_GETARG_INT64(3)) : 0;
	require_published(pinned_snapshot ? as_of : capture_last_generation());

	const auto ef = static_cast<std::uint32_t>(std::max(engram_ef_search, k));
	// A re-ranked recall gathers its candidates by quantized distance alone
	// and scores them once their distances are exact.
	const std::uint32_t reranked = rerank_candidates(info.encoding, static_cast<std::uint32_t>(k), ef);
	const std::uint32_t wanted =
		reranked == 0
			? static_cast<std::uint32_t>(k)
			: std::max(reranked, options.scored
									 ? std::max(ef, engram::core::k_score_widening * static_cast<std::uint32_t>(k))
									 : 0u);
	auto *hits = static_cast<Hit *>(palloc(sizeof(Hit) * wanted));
	std::size_t found = 0;
	engram::core::HnswStatus status = engram::core::HnswStatus::ok;
	do {
		if (status == engram::core::HnswStatus::interrupted)
			CHECK_FOR_INTERRUPTS(); // no pin is held here
		status = engram::core::HnswStatus::ok;
		found = 0;
		// The space's health and its graph are read under one lock: a
		// quarantine turns the health first, so a graph pinned while it read
		// ready stays whole until the pin is dropped.
		LWLockAcquire(shared_directory_lock(), LW_SHARED);
		const SpaceSlot *slot = directory_find(info.space_id);
		const bool ready = slot != nullptr ? slot->health.load(std::memory_order_acquire) == SPACE_READY
										   : !directory_homeless(info.space_id);
		engram::core::GraphPin pin;
		if (slot != nullptr && ready)
			pin = engram::core::pin_current(directory_index(slot));
		const SnapshotGap gap = snapshot_gap(slot);
		// The latest generation is read once the graph is pinned: a
		// compaction removes nodes forgotten up to the generation published
		// when it ran, which this one is not older than for the graph it
		// installed.
		const std::uint64_t generation = pinned_snapshot ? as_of : shared_ring().published_generation();
		LWLockRelease(shared_directory_lock());
		if (!ready)
			space_require_recallable(info.space_id, space); // no pin was taken
		if (pinned_snapshot && as_of >= gap.from && as_of < gap.to) {
			pin.release();
			report_unanswerable(gap, as_of);
		}
		if (!pin)
			break;
		// A C++ exception from here on unwinds the pin and reaches the guard.
		const engram::core::HnswGraph graph = pinned_graph(pin);
		engram::core::SearchParams params;
		params.k = wanted;
		params.ef = ef;
		params.max_generation = generation;
		params.min_confidence = min_confidence;
		params.filter = options.filtered ? &options.filter : nullptr;
		params.scoring = options.scored && reranked == 0 ? &options.scoring : nullptr;
		// Only where CHECK_FOR_INTERRUPTS() can act on it; otherwise the flag
		// stays raised and the search would stop again and again.
		params.interrupt = INTERRUPTS_CAN_BE_PROCESSED() ? &InterruptPending : nullptr;
		const engram::core::SearchResult result =
			graph.snapshot_search(std::span<const float>(cue, static_cast<std::size_t>(dim)), params,
								  *search_context());
		status = result.status;
		for (const engram::core::Neighbor &n : result.neighbors)
			hits[found++] = Hit{graph.label(n.id), n.distance, graph.confidence(n.id), graph.generation(n.id),
								graph.observed_at(n.id)};
		pin.release();
	} while (status == engram::core::HnswStatus::interrupted);
	if (status != engram::core::HnswStatus::ok)
		raise_status(status, psprintf("recall in space \"%s\"", space));
	if (reranked != 0)
		found = rerank_hits(info, std::span<const float>(cue, static_cast<std::size_t>(dim)), options, hits, found,
							static_cast<std::size_t>(k));

	InitMaterializedSRF(fcinfo, 0);
	auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	for (std::size_t i = 0; i < found; ++i) {
		const Hit &hit = hits[i];
		const float distance = info.metric == engram::core::Metric::l2 ? std::sqrt(std::max(hit.distance, 0.0f))
																	   : hit.distance;
		const float score = options.scored ? engram::core::score(info.metric, hit.distance, hit.confidence,
																 hit.observed_at, options.scoring)
										   : engram::core::similarity(info.metric, hit.distance);
		Datum values[6] = {Int64GetDatum(hit.id),
						   Float4GetDatum(distance),
						   Float4GetDatum(score),
						   Float4GetDatum(hit.confidence),
						   Int64GetDatum(static_cast<std::int64_t>(hit.generation)),
						   TimestampTzGetDatum(hit.observed_at)};
		bool nulls[6] = {false, false, false, false, false, false};
		// (A catalog still at 0.3.0 declares five columns: the sixth is not read.)
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	metrics_observe_recall(started_us);
	return static_cast<Datum>(0);
}

ENGRAM_FUNCTION(engram_current_generation)
{
	shared_require();
	require_observations_user("engram._current_generation()");
	instance_require();
	require_published(capture_last_generation());
	PG_RETURN_INT64(static_cast<std::int64_t>(shared_ring().published_generation()));
}

// engram._wait_linked(space_id, generation, timeout_ms): true once every
// observation of the space up to `generation` (NULL: every commit so far) is
// linked into its graph, and counted in the linked latency histogram.
ENGRAM_FUNCTION(engram_wait_linked)
{
	shared_require();
	require_observations_user("engram._wait_linked()");
	instance_require();
	const std::int32_t space_id = PG_GETARG_INT32(0);
	const std::uint64_t target = PG_ARGISNULL(1) ? shared_ring().last_generation()
												 : check_generation(PG_GETARG_INT64(1));
	const int timeout_ms = PG_ARGISNULL(2) ? 10000 : PG_GETARG_INT32(2);
	if (timeout_ms < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("timeout_ms must not be negative")));
	const TimestampTz started = GetCurrentTimestamp();
	if (!wait_published(target, timeout_ms))
		PG_RETURN_BOOL(false);
	// A quarantined space has no graph to wait for: say so rather than "linked".
	space_require_recallable(space_id, nullptr);
	std::uint64_t seen_offset = 0, needed = 0;
	for (;;) {
		LWLockAcquire(shared_directory_lock(), LW_SHARED);
		const SpaceSlot *slot = directory_find(space_id);
		engram::core::GraphPin pin;
		if (slot != nullptr)
			pin = engram::core::pin_current(directory_index(slot));
		LWLockRelease(shared_directory_lock());
		if (!pin)
			PG_RETURN_BOOL(true); // nothing stored for the space
		const engram::core::HnswGraph graph = pinned_graph(pin);
		// Every node with generation <= target was stored before now; after a
		// rebuild swaps graphs, count again on the new one.
		if (pin.offset() != seen_offset) {
			seen_offset = pin.offset();
			needed = graph.size();
		}
		// Linked, and timed: the linker that finished them settles their
		// commit stamps just after (engram_streaming_observation_latency_seconds).
		const bool done = graph.linked_prefix() >= needed && graph.link_stamps_settled_to(needed);
		pin.release();
		if (done)
			PG_RETURN_BOOL(true);
		if (TimestampDifferenceExceeds(started, GetCurrentTimestamp(), timeout_ms))
			PG_RETURN_BOOL(false);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

namespace {

// A slot for a space that was refused one (directory.hpp), to rebuild it
// into: nullptr if none is free. The slot starts loading, with its rebuild
// asked for; `finished` and `failed` receive its counters as they were.
SpaceSlot *
place_homeless(std::int32_t space_id, std::uint32_t &finished, std::uint32_t &failed)
{
	SpaceDefinition definition;
	if (!space_by_id(space_id, &definition))
		return nullptr;
	LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
	SpaceSlot *slot = directory_install(definition, InvalidTransactionId);
	if (slot != nullptr) {
		finished = slot->rebuilds_finished.load(std::memory_order_acquire);
		failed = slot->rebuilds_failed.load(std::memory_order_acquire);
		slot->health.store(SPACE_LOADING, std::memory_order_release);
		slot->rebuild_requested.store(1, std::memory_order_release);
		directory_owe(slot, DUTY_REBUILD);
	}
	LWLockRelease(shared_directory_lock());
	return slot;
}

} // namespace

// engram._rebuild(space_id): asks the workers to rebuild the space's graph
// from the table and waits until the new graph serves recalls. Only the
// space's owner (or a member of the owning role) may.
// from the table and waits until the new graph serves recalls. A quarantined
// space is ready again once it returns.
ENGRAM_FUNCTION(engram_rebuild)
{
	shared_require();
	instance_require();
	const std::int32_t space_id = PG_GETARG_INT32(0);
	SpaceDefinition space;
	if (!space_by_id(space_id, &space))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("space %d does not exist", space_id),
						errhint("Create it with engram.create_space(), or list spaces in engram.spaces.")));
	require_space_owner(space, GetUserId(), "Rebuild it as its owner, or as a member of the owning role.");
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	SpaceSlot *slot = directory_find(space_id);
	const bool homeless = slot == nullptr && directory_homeless(space_id);
	LWLockRelease(shared_directory_lock());
	std::uint32_t finished = 0, failed = 0;
	if (homeless) {
		slot = place_homeless(space_id, finished, failed);
		if (slot == nullptr)
			ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							errmsg("cannot rebuild space %d: the space directory is full", space_id),
							errdetail("All %u slots of engram.max_spaces are in use.", directory_capacity()),
							errhint("Drop unused spaces, or raise engram.max_spaces (takes a restart).")));
	} else if (slot == nullptr) {
		PG_RETURN_VOID(); // nothing stored yet: there is no index to rebuild
	} else {
		finished = slot->rebuilds_finished.load(std::memory_order_acquire);
		failed = slot->rebuilds_failed.load(std::memory_order_acquire);
		std::uint32_t idle = 0;
		slot->rebuild_requested.compare_exchange_strong(idle, 1, std::memory_order_acq_rel);
		directory_owe(slot, DUTY_REBUILD);
	}
	shared_wake_workers();
	while (slot->rebuilds_finished.load(std::memory_order_acquire) == finished) {
		if (slot->rebuilds_failed.load(std::memory_order_acquire) != failed) {
			// A quarantined space that still does not fit says why.
			space_require_recallable(space_id, nullptr);
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY), errmsg("rebuild of space %d was abandoned", space_id),
					 errdetail("The replacement index did not fit in engram.memory_limit; the old index "
							   "still serves recalls."),
					 errhint("Raise engram.memory_limit: a rebuild needs room for a second copy of the index.")));
		}
		if (slot->state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE || slot->space_id != space_id)
			PG_RETURN_VOID(); // dropped meanwhile
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	PG_RETURN_VOID();
}
