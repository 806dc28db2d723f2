// Where the spaces' graph files live and whose they are: one file per space,
// $PGDATA/engram/space_<id>.graph, written by the engram writer (writer.hpp)
// and read by the loader after a start (file_load.hpp). The files are a cache
// of engram.observations: any of them may be missing or stale, never wrong,
// because the loader checks each against the table.
//
// A file names its cluster (the system identifier), the installation of the
// extension (core/instance_id.hpp) and its space, so a file copied from
// another cluster, left by a dropped installation or renamed is refused.
#pragma once

#include <cstdint>

#include "core/graph_file.hpp"

// Paths are plain strings (palloc'd), so that an error raised here never
// unwinds through a C++ object that owns memory.
// $PGDATA/engram.
const char *graph_file_directory(void);
const char *graph_file_path(std::int32_t space_id);
// Creates $PGDATA/engram (the cluster's directory mode) if it is missing;
// false, with a WARNING, if it cannot.
bool graph_file_directory_create(void);

// The identity every file of this cluster, installation and space carries.
engram::core::GraphFileIdentity graph_file_identity(std::int32_t space_id);

// Removes the space's file if there is one, durably (the directory is
// synced); a failure is logged, not raised.
void graph_file_remove(std::int32_t space_id);
// Removes every graph file (engram.persist off, the extension dropped or
// installed anew).
void graph_files_remove_all(void);
// Removes temporary files left by a writer that stopped half way and the
// files of spaces that have no live slot. Only the writer calls it, once the
// spaces are loaded, so no file is removed before the loader has read it.
void graph_files_sweep(void);
