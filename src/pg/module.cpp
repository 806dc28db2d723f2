// Entry point of the engram library: refuses to load unless preloaded, then
// defines the settings, requests shared memory, registers the worker pool,
// the writer, the metrics endpoint (when engram.metrics_address is set) and
// the transaction callbacks that publish observations at commit.
#include "pg/capture.hpp"
#include "pg/guc.hpp"
#include "pg/instance.hpp"
#include "pg/metrics_endpoint.hpp"
#include "pg/shared.hpp"
#include "pg/worker.hpp"
#include "pg/writer.hpp"

#include "pg/postgres.hpp"

extern "C" {
PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

static shmem_request_hook_type prev_shmem_request_hook = nullptr;
static shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

static void
engram_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	guarded(shared_request);
}

static void
engram_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	guarded(shared_startup);
}

// Everything _PG_init sets up, inside the guard.
static void
register_engram(void)
{
	guc_define();
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = engram_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = engram_shmem_startup;
	worker_register_pool();
	writer_register();
	metrics_endpoint_register();
	capture_register_callbacks();
}

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		shared_report_not_preloaded();
	guarded(register_engram);
}

// Called by the install and upgrade scripts: a library loaded any other way
// has already failed in _PG_init, but CREATE EXTENSION in a server where
// engram is not preloaded reaches here only if the library was never loaded
// at all. The workers serve one database, so engram installs only there.
ENGRAM_FUNCTION(engram_require_preload)
{
	shared_require();
	instance_require_database();
	PG_RETURN_VOID();
}
