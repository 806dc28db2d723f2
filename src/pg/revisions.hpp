// Revisions: how a start tells that a space's graph file predates a delete
// or an update of its rows.
//
// Every transaction that deletes or updates rows of a space inserts a row
// into engram.revisions (capture.cpp), numbered by a sequence. The writer
// notes in each file the newest revision committed when it read the graph,
// and writes only while no such transaction of the space is in flight and
// every committed one has been stored (SpaceFileState), so the file holds
// every revision up to its number. A start that finds a committed revision
// above a file's number reads the space from the table instead: the file
// may hold rows deleted since, or old versions of rows updated since. The
// writer prunes the rows its new file covers.
#pragma once

#include <cstdint>

// The newest revision of the space the active snapshot sees (0 if none);
// false when engram.revisions cannot be read (a catalog older than 0.4.0
// has none, and then no row can have been deleted or updated).
bool space_revision(std::int32_t space_id, std::int64_t *revision);

// Whether the active snapshot sees a revision of the space above `revision`.
bool space_revised_after(std::int32_t space_id, std::int64_t revision);

// Removes the revisions of the space up to `revision` (a file holds them).
void prune_revisions(std::int32_t space_id, std::int64_t revision);

// Removes every revision (no space has a file).
void clear_revisions(void);
