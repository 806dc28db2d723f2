// engram's state in the Prometheus text exposition format (version 0.0.4),
// written by engram.metrics() (fn_metrics.cpp) for a scraper that runs one
// SQL query, and by the metrics endpoint (metrics_endpoint.cpp) for one that
// fetches /metrics over HTTP; see "Metrics" in docs/operations.md.
// Everything comes from shared memory: the counters and latency histograms of
// pg/metrics.hpp, the workers' slots, the ring, the arena, and each space's
// slot and graph read the way engram.spaces reads them, so writing it takes
// no lock for longer than one space's look-up, needs no catalog access and no
// database connection.
#include <algorithm>
#include <cstring>
#include <iterator>

#include "core/latency_histogram.hpp"
#include "core/pressure.hpp"
#include "pg/metrics.hpp"
#include "pg/pressure.hpp"
#include "pg/shared.hpp"

#include "pg/guc.hpp"
#include "pg/metrics_exposition.hpp"
#include "pg/postgres.hpp"

namespace {

// One space's gauges, read with its graph pinned and written out after.
struct SpaceGauges {
	std::uint64_t observations, linked, pending, memory_bytes, unpersisted;
};

// The per-space families, each written as one block (a family's samples
// must not be interleaved with another's).
enum SpaceFamily { SPACE_OBSERVATIONS, SPACE_LINKED, SPACE_PENDING, SPACE_MEMORY, SPACE_UNPERSISTED, SPACE_FAMILIES };

struct Family {
	const char *name;
	const char *type;
	const char *help;
};

constexpr Family k_space_families[SPACE_FAMILIES] = {
	{"engram_space_observations", "gauge", "Observations the space's index holds (forgotten ones not counted)."},
	{"engram_space_linked", "gauge", "Of the space's observations, those linked into its graph (found by recall)."},
	{"engram_space_pending", "gauge", "Observations stored in the space's index and not linked yet."},
	{"engram_space_memory_bytes", "gauge", "Shared memory the space's graphs take of engram.memory_limit."},
	{"engram_space_unpersisted_observations", "gauge",
	 "Nodes of the space's index that its graph file does not hold yet (all of them while it has none)."},
};

void
header(StringInfo out, const char *name, const char *type, const char *help)
{
	appendStringInfo(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

// A label value: backslash, double quote and newline escaped.
void
label_value(StringInfo out, const char *value)
{
	for (const char *c = value; *c != '\0'; ++c) {
		if (*c == '\\')
			appendStringInfoString(out, "\\\\");
		else if (*c == '"')
			appendStringInfoString(out, "\\\"");
		else if (*c == '\n')
			appendStringInfoString(out, "\\n");
		else
			appendStringInfoChar(out, *c);
	}
}

void
counter(StringInfo out, const char *name, const char *help, std::uint64_t value)
{
	header(out, name, "counter", help);
	appendStringInfo(out, "%s %llu\n", name, static_cast<unsigned long long>(value));
}

void
gauge(StringInfo out, const char *name, const char *help, double value)
{
	header(out, name, "gauge", help);
	appendStringInfo(out, "%s %.17g\n", name, value);
}

void
histogram(StringInfo out, const char *name, const char *help, const engram::core::LatencyHistogram &h)
{
	const engram::core::LatencySnapshot s = h.snapshot();
	header(out, name, "histogram", help);
	for (std::size_t i = 0; i < engram::core::k_latency_bounds_us.size(); ++i)
		appendStringInfo(out, "%s_bucket{le=\"%g\"} %llu\n", name,
						 static_cast<double>(engram::core::k_latency_bounds_us[i]) / 1e6,
						 static_cast<unsigned long long>(s.cumulative[i]));
	appendStringInfo(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, static_cast<unsigned long long>(s.count()));
	appendStringInfo(out, "%s_sum %.6f\n", name, static_cast<double>(s.sum_us) / 1e6);
	appendStringInfo(out, "%s_count %llu\n", name, static_cast<unsigned long long>(s.count()));
}

void
pipeline_metrics(StringInfo out, const EngramShared *s)
{
	const MetricCounters &m = s->metrics;
	counter(out, "engram_streaming_observations_total",
			"Observations committed into engram's ingest ring (inserted rows and new versions of updated ones).",
			m.observations_committed.load(std::memory_order_relaxed));
	engram::core::Ring ring = shared_ring();
	const std::uint64_t committed = ring.committed_records(), consumed = ring.consumed_records();
	gauge(out, "engram_streaming_queue_depth", "Ring records committed and not yet taken by a worker.",
		  committed > consumed ? static_cast<double>(committed - consumed) : 0.0);
	counter(out, "engram_streaming_backpressure_activations_total",
			"Commits the ingest pipeline held back at least once (they waited for room, or were refused).",
			m.backpressure_activations.load(std::memory_order_relaxed));
	header(out, "engram_commits_refused_total", "counter",
		   "Transactions refused by engram's ingest pipeline (SQLSTATE 53E01, 54000 or 57014), by cause.");
	for (std::uint32_t c = 0; c < REFUSAL_CAUSES; ++c) {
		appendStringInfoString(out, "engram_commits_refused_total{cause=\"");
		label_value(out, refusal_cause_name(static_cast<RefusalCause>(c)));
		appendStringInfo(out, "\"} %llu\n",
						 static_cast<unsigned long long>(m.commits_refused[c].load(std::memory_order_relaxed)));
	}
	histogram(out, "engram_streaming_observation_latency_seconds",
			  "From a commit until its observations are linked into their space's graph, per observation.",
			  m.linked_latency);
	histogram(out, "engram_observation_stored_latency_seconds",
			  "From a commit until a worker stored its observations in their space's index (recall finds them "
			  "from then on, by exact scan until linked), per observation.",
			  m.stored_latency);
	histogram(out, "engram_streaming_recall_latency_seconds", "Duration of engram.recall calls that returned.",
			  m.recall_latency);
	gauge(out, "engram_pipeline_fill", "How full the ingest pipeline is, 0 to 1 (engram.pressure()'s fill).",
		  pressure_now().fill);
	const engram::core::Arena arena = shared_arena();
	gauge(out, "engram_memory_used_bytes", "Shared memory the spaces' indexes use of engram.memory_limit.",
		  static_cast<double>(arena.used_bytes()));
	gauge(out, "engram_memory_capacity_bytes", "engram.memory_limit in bytes.",
		  static_cast<double>(arena.capacity_bytes()));
}

// The per-worker families, each as one block over the workers.
void
worker_metrics(StringInfo out, const EngramShared *s)
{
	const int workers = std::min<int>(engram_workers, static_cast<int>(std::size(s->workers)));
	header(out, "engram_streaming_worker_utilization", "gauge",
		   "Share of its life a worker spent draining the ring, 0 to 1.");
	for (int i = 0; i < workers; ++i) {
		const std::uint64_t alive = s->workers[i].alive_us.load(std::memory_order_relaxed);
		const std::uint64_t busy = s->workers[i].busy_us.load(std::memory_order_relaxed);
		appendStringInfo(out, "engram_streaming_worker_utilization{worker=\"%d\"} %.6g\n", i,
						 alive == 0 ? 0.0 : static_cast<double>(busy) / static_cast<double>(alive));
	}
	// The gauge above averages over a worker's life; this counter's rate() is
	// its utilization now.
	header(out, "engram_worker_busy_seconds_total", "counter", "Seconds a worker spent draining the ring.");
	for (int i = 0; i < workers; ++i)
		appendStringInfo(out, "engram_worker_busy_seconds_total{worker=\"%d\"} %.6f\n", i,
						 static_cast<double>(s->workers[i].busy_us.load(std::memory_order_relaxed)) / 1e6);
	header(out, "engram_worker_stored_total", "counter", "Observations a worker stored into the spaces' indexes.");
	for (int i = 0; i < workers; ++i)
		appendStringInfo(out, "engram_worker_stored_total{worker=\"%d\"} %llu\n", i,
						 static_cast<unsigned long long>(s->workers[i].stored_total.load(std::memory_order_relaxed)));
	header(out, "engram_worker_linked_total", "counter", "Observations a worker's link threads linked.");
	for (int i = 0; i < workers; ++i)
		appendStringInfo(out, "engram_worker_linked_total{worker=\"%d\"} %llu\n", i,
						 static_cast<unsigned long long>(s->workers[i].linked_total.load(std::memory_order_relaxed)));
	header(out, "engram_worker_link_rate", "gauge",
		   "Observations per second a worker's link threads linked, smoothed over the times there was work.");
	for (int i = 0; i < workers; ++i)
		appendStringInfo(
			out, "engram_worker_link_rate{worker=\"%d\"} %llu\n", i,
			static_cast<unsigned long long>(s->workers[i].linked_per_second.load(std::memory_order_relaxed)));
}

// A live slot's name and gauges, as engram.spaces computes them; false if
// the slot is not live or its space has no graph yet.
bool
read_space(SpaceSlot &slot, char (&name)[k_space_name_bytes], SpaceGauges &g)
{
	LWLockAcquire(shared_directory_lock(), LW_SHARED);
	if (slot.state.load(std::memory_order_acquire) != SPACE_SLOT_LIVE) {
		LWLockRelease(shared_directory_lock());
		return false;
	}
	memcpy(name, slot.name, k_space_name_bytes);
	name[k_space_name_bytes - 1] = '\0';
	engram::core::IndexSlot &index = directory_index(&slot);
	engram::core::GraphPin pin = engram::core::pin_current(index);
	LWLockRelease(shared_directory_lock());
	g = SpaceGauges{0, 0, 0, 0, 0};
	if (!pin)
		return true; // a space without rows yet: all zero
	std::uint64_t memory = 0;
	if (engram::core::GraphPin other(index, 1 - pin.which()); other)
		memory += pinned_graph(other).memory_bytes();
	const engram::core::HnswGraph graph = pinned_graph(pin);
	const std::uint64_t stored = graph.size(), linked = graph.linked_count(), forgotten = graph.forgotten_count();
	memory += graph.memory_bytes();
	pin.release();
	const std::uint64_t in_file = slot.file.observations.load(std::memory_order_acquire);
	g.observations = stored > forgotten ? stored - forgotten : 0;
	g.linked = linked > forgotten ? linked - forgotten : 0;
	g.pending = stored > linked ? stored - linked : 0;
	g.memory_bytes = memory;
	g.unpersisted = stored > in_file ? stored - in_file : 0;
	return true;
}

void
space_metrics(StringInfo out)
{
	StringInfoData blocks[SPACE_FAMILIES];
	for (int f = 0; f < SPACE_FAMILIES; ++f) {
		initStringInfo(&blocks[f]);
		header(&blocks[f], k_space_families[f].name, k_space_families[f].type, k_space_families[f].help);
	}
	const std::span<SpaceSlot> slots = directory_slots();
	for (std::size_t i = 0; i < slots.size(); ++i) {
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		char name[k_space_name_bytes];
		SpaceGauges g;
		if (!read_space(slots[i], name, g))
			continue;
		const std::uint64_t values[SPACE_FAMILIES] = {g.observations, g.linked, g.pending, g.memory_bytes,
													  g.unpersisted};
		for (int f = 0; f < SPACE_FAMILIES; ++f) {
			appendStringInfo(&blocks[f], "%s{space=\"", k_space_families[f].name);
			label_value(&blocks[f], name);
			appendStringInfo(&blocks[f], "\"} %llu\n", static_cast<unsigned long long>(values[f]));
		}
	}
	for (int f = 0; f < SPACE_FAMILIES; ++f) {
		appendBinaryStringInfo(out, blocks[f].data, blocks[f].len);
		pfree(blocks[f].data);
	}
}

} // namespace

void
metrics_write_exposition(StringInfo out)
{
	const EngramShared *s = shared_require();
	pipeline_metrics(out, s);
	worker_metrics(out, s);
	space_metrics(out);
}
