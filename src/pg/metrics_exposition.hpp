// The Prometheus text exposition of engram's metrics (metrics_exposition.cpp),
// shared by engram.metrics() and the metrics endpoint.
#pragma once

#include "pg/postgres.hpp"

// Appends every metric family to `out`. Reads shared memory only; may raise
// an error (out of memory, or an interrupt between spaces).
void metrics_write_exposition(StringInfo out);
