// The engram.* settings, as plain variables the rest of the glue reads on the
// main thread. The core never reads them: the glue copies what it needs.
#pragma once

extern int engram_workers;
extern char *engram_database;
extern int engram_ring_size_kb;
extern int engram_memory_limit_mb;
extern double engram_pressure_warning;
extern double engram_pressure_critical;
extern double engram_pressure_overloaded;
extern int engram_overload_policy;
extern int engram_overload_timeout_ms;
extern int engram_max_overload_timeout_ms;
extern int engram_ef_search;
extern int engram_link_threads;
extern int engram_max_spaces;
extern double engram_memory_reserve;
extern bool engram_pause_linking;
extern bool engram_track_latency;
extern bool engram_persist;
extern int engram_persist_interval_ms;
extern int engram_erase_within_ms;
extern int engram_persist_rows;
extern char *engram_metrics_address;

enum EngramOverloadPolicy { ENGRAM_POLICY_WAIT, ENGRAM_POLICY_ERROR };

inline constexpr int k_engram_max_workers = 64;
inline constexpr int k_engram_max_k = 10000;

void guc_define(void);

// How long the "wait" policy waits: engram.overload_timeout, at most the
// server's engram.max_overload_timeout.
int guc_overload_wait_ms(void);
