// The first step of loading a space after a start: its graph file, if it has
// a usable one (worker_load.cpp does the rest). Main thread of the loading
// worker, inside the load's transaction with its snapshot active.
#pragma once

#include <cstdint>

#include "core/graph_file.hpp"
#include "pg/shared.hpp"

struct FileLoad {
	bool loaded = false;             // the file's graph is now the space's current graph
	std::int64_t *missing = nullptr; // ids of rows the table holds and the file lacks, ascending (palloc'd)
	std::uint64_t missing_count = 0;
	engram::core::GraphFileIdentity stored; // what the file says it covers
};

// Reads the space's file into shared memory and checks it against the table:
// the file must hold only rows the snapshot sees (a file of rows the table
// does not hold, e.g. after restoring an older backup, is refused), and the
// rows it lacks are listed for the caller to load. A file that is missing,
// truncated, corrupt, foreign, of another version or shape, or that does
// not fit, is not used (a LOG line says why, except for a missing file) and
// nothing is left in shared memory; the caller then loads the space from
// the table. `load_generation` is the generation the load gives new rows:
// a file with later generations is refused as well.
FileLoad load_graph_file(SpaceSlot *slot, std::uint64_t load_generation);
