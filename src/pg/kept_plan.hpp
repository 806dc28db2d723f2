// Statements the extension prepares once per backend and keeps.
//
// Why: the capture trigger, the workers, recall and the catalog lookups each
// run a few fixed SQL statements many times; planning them once and keeping
// the plan (SPI_keepplan) is the same four lines everywhere, with the same
// error when preparing fails.
#pragma once

#include "pg/postgres.hpp"

// The plan in `plan`, prepared from sql (with nargs arguments of the given
// types) and kept on first use. Must run inside SPI_connect().
SPIPlanPtr kept_plan(SPIPlanPtr &plan, const char *sql, int nargs, Oid *types);
