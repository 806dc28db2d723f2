// The PostgreSQL headers the glue uses, in C linkage. Include this after any
// src/core header (the core refuses to compile once postgres.h is in).
#pragma once

extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

// Our own SQLSTATEs: class 53 (insufficient resources) for backpressure, so
// clients that retry on resource errors retry this one too; class 22 (data
// exception) for a sequence gap in a streaming session.
#define ERRCODE_ENGRAM_OVERLOADED MAKE_SQLSTATE('5', '3', 'E', '0', '1')

#include "pg/boundary.hpp"
