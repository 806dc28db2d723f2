// Definitions of the engram.* settings, each with its range, unit and the
// tightest context that still lets it do its job: sizes and the pool are fixed
// at server start, thresholds follow a reload, and policy is per session.
#include "pg/guc.hpp"

#include <algorithm>

#include "pg/metrics_endpoint.hpp"
#include "pg/postgres.hpp"

int engram_workers = 2;
char *engram_database = nullptr;
int engram_ring_size_kb = 64 * 1024;
int engram_memory_limit_mb = 1024;
double engram_pressure_warning = 0.5;
double engram_pressure_critical = 0.8;
double engram_pressure_overloaded = 0.95;
int engram_overload_policy = ENGRAM_POLICY_WAIT;
int engram_overload_timeout_ms = 5000;
// A ceiling only the server sets: any role may choose its own wait, but a
// commit holding its locks and its connection must not wait an hour because a
// client asked it to.
int engram_max_overload_timeout_ms = 60000;
// 128 rather than 100: with a space's defaults (m 16, ef_construction 100)
// it keeps recall@10 on the real glove100 word vectors above 0.95 with a
// margin (0.964 on a one-thread build; 0.965 against 0.952 at ef 100 when
// the default ef_construction was 200), for a little more time per recall
// (5,759 against 5,967 queries/s in that run).
int engram_ef_search = 128;
int engram_link_threads = 0;
int engram_max_spaces = 100000;
// A tenth of the arena is kept from the space holding the most memory, so
// that when one space fills engram.memory_limit it is that space, and not
// whichever small one happens to ask next, that is quarantined.
double engram_memory_reserve = 0.1;
bool engram_pause_linking = false;
bool engram_track_latency = true;
bool engram_persist = true;
int engram_persist_interval_ms = 60000;
int engram_persist_rows = 100000;
char *engram_metrics_address = nullptr;
int engram_erase_within_ms = 60000;

static const struct config_enum_entry overload_policy_options[] = {
	{"wait", ENGRAM_POLICY_WAIT, false},
	{"error", ENGRAM_POLICY_ERROR, false},
	{nullptr, 0, false},
};

void
guc_define(void)
{
	DefineCustomIntVariable("engram.workers", "Number of background workers that drain the ring and index.",
							"Valid range is 0..64; 0 disables ingest processing.", &engram_workers, 2, 0,
							k_engram_max_workers, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
	DefineCustomStringVariable("engram.database", "Database the engram workers connect to.",
							   "The database where CREATE EXTENSION engram was run.", &engram_database, "postgres",
							   PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("engram.ring_size", "Capacity of the shared-memory ring between backends and workers.",
							"Valid range is 1MB..1GB.", &engram_ring_size_kb, 64 * 1024, 1024, 1024 * 1024,
							PGC_POSTMASTER, GUC_UNIT_KB, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("engram.memory_limit", "Shared memory for the spaces' indexes (graphs with their vectors).",
							"Valid range is 16MB..1TB.", &engram_memory_limit_mb, 1024, 16, 1024 * 1024, PGC_POSTMASTER,
							GUC_UNIT_MB, nullptr, nullptr, nullptr);
	DefineCustomRealVariable("engram.pressure_warning", "Pipeline fill at which pressure becomes \"warning\".",
							 "A fraction between 0 and 1.", &engram_pressure_warning, 0.5, 0.0, 1.0, PGC_SIGHUP, 0,
							 nullptr, nullptr, nullptr);
	DefineCustomRealVariable("engram.pressure_critical", "Pipeline fill at which pressure becomes \"critical\".",
							 "A fraction between 0 and 1.", &engram_pressure_critical, 0.8, 0.0, 1.0, PGC_SIGHUP, 0,
							 nullptr, nullptr, nullptr);
	DefineCustomRealVariable("engram.pressure_overloaded",
							 "Pipeline fill at which pressure becomes \"overloaded\" and the overload policy applies.",
							 "A fraction between 0 and 1.", &engram_pressure_overloaded, 0.95, 0.0, 1.0, PGC_SIGHUP, 0,
							 nullptr, nullptr, nullptr);
	DefineCustomEnumVariable("engram.overload_policy", "What a commit does when the pipeline is overloaded.",
							 "\"wait\" blocks up to engram.overload_timeout, \"error\" refuses at once.",
							 &engram_overload_policy, ENGRAM_POLICY_WAIT, overload_policy_options, PGC_USERSET, 0,
							 nullptr, nullptr, nullptr);
	DefineCustomIntVariable("engram.overload_timeout", "How long the \"wait\" overload policy waits before failing.",
							"Valid range is 0..3600000 ms; the wait never exceeds engram.max_overload_timeout.",
							&engram_overload_timeout_ms, 5000, 0, 3600000, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr,
							nullptr);
	DefineCustomIntVariable(
		"engram.max_overload_timeout",
		"Longest wait the \"wait\" overload policy may make, whatever engram.overload_timeout says.",
		"Set by the server (postgresql.conf, ALTER SYSTEM); valid range is 0..3600000 ms.",
		&engram_max_overload_timeout_ms, 60000, 0, 3600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("engram.ef_search", "Default search breadth (HNSW ef) of engram.recall().",
							"Larger values find more of the true nearest neighbours and cost time; recall uses at "
							"least k. Valid range is 1..10000.",
							&engram_ef_search, 128, 1, 10000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("engram.link_threads", "Threads each engram worker links with.",
							"0 shares the machine's cores among the workers. Valid range is 0..64.",
							&engram_link_threads, 0, 0, 64, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("engram.max_spaces", "Spaces the shared space directory holds.",
							"Each costs about 600 bytes of shared memory, taken at server start; create_space "
							"refuses more. Valid range is 1..1000000.",
							&engram_max_spaces, 100000, 1, 1000000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
	DefineCustomRealVariable("engram.memory_reserve",
							 "Share of engram.memory_limit the space holding the most memory may not take.",
							 "While other spaces exist, the largest one is quarantined rather than grow into the "
							 "last part of the arena, which stays for the others. A fraction between 0 and 0.5.",
							 &engram_memory_reserve, 0.1, 0.0, 0.5, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	// A switch for maintenance and tests (a large unlinked tail on demand).
	// The workers read it, so it is set in the server's configuration (and
	// reloaded), which only superusers can change.
	DefineCustomBoolVariable("engram.pause_linking", "Stops the workers from linking stored observations.",
							 "Stored observations stay in the exact tail that every recall scans until linking "
							 "resumes; ingest goes on until backpressure stops it.",
							 &engram_pause_linking, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	// Like track_io_timing: superuser-only, because a session that turns it
	// off leaves its commits and recalls out of the shared histograms.
	DefineCustomBoolVariable("engram.track_latency",
							 "Times commits until their observations are stored and linked, and recalls.",
							 "Off skips the clock reads and histogram updates of engram.metrics()' latency "
							 "histograms for this session's commits and recalls.",
							 &engram_track_latency, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
	// Graph files (graph_files.hpp): read by the engram writer and the
	// loader, so set for the whole server.
	DefineCustomBoolVariable("engram.persist", "Keeps each space's index in a graph file under the data directory.",
							 "A start or crash restart then loads the files and links only the rows they lack. Off: "
							 "no file is written or loaded, and existing ones are removed.",
							 &engram_persist, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("engram.persist_interval", "Longest time a changed index waits for its graph file.",
							"0 writes files only on row counts, at checkpoint() and at a clean shutdown. Valid range "
							"is 0..86400000 ms.",
							&engram_persist_interval_ms, 60000, 0, 86400000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
							nullptr);
	DefineCustomIntVariable("engram.persist_rows", "Rows missing from a space's graph file that make it due at once.",
							"The file is written without waiting for engram.persist_interval once this many rows, and "
							"at least a quarter of the rows it holds, are missing from it. 0 disables the trigger.",
							&engram_persist_rows, 100000, 0, INT_MAX, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("engram.erase_within",
							"Longest time a forgotten observation's vector stays in engram's memory.",
							"Deleted observations are removed from the index, their memory overwritten and reused, and "
							"their space's graph file rewritten within about this long after the delete commits. "
							"Snapshots (as_of) older than the last such removal are refused. Valid range is "
							"1000..86400000 ms.",
							&engram_erase_within_ms, 60000, 1000, 86400000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
							nullptr);
	DefineCustomStringVariable("engram.metrics_address",
							   "Address where a background worker serves engram's metrics over HTTP, at /metrics.",
							   "\"host:port\", such as \"127.0.0.1:9188\"; empty (the default) runs no endpoint. "
							   "Anyone who can reach the address reads what engram.metrics() shows.",
							   &engram_metrics_address, "", PGC_POSTMASTER, 0, metrics_address_check, nullptr, nullptr);
	MarkGUCPrefixReserved("engram");
}

int
guc_overload_wait_ms(void)
{
	return std::min(engram_overload_timeout_ms, engram_max_overload_timeout_ms);
}
