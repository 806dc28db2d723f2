// The workers follow the installation of engram in engram.database (see
// core/instance_id.hpp): when the extension is dropped, or dropped and
// created again, the indexes of the old installation are freed and the new
// one is loaded from its own table; ring records of any other installation
// are dropped. Main thread of a worker only.
#pragma once

#include "core/ring.hpp"

// Checks the catalog when due (every second, or at once when a backend or the
// drain asked) and, when the installation changed, frees every space of the
// previous one and marks the load needed, so that the new installation starts
// from empty indexes and is loaded from its table. Needs the ring's consumer
// token for that; without it, tries again at the next call. Returns false
// while engram is not installed in this database. Not inside a transaction.
bool follow_instance(int worker_index, bool force);

// Whether the directory belongs to the installation the catalog showed last,
// so that a load from the table fills it with the right rows.
bool instance_current(void);

// What the drain does with a ring record.
enum class RecordFate {
	store, // of the installation the directory serves
	drop,  // of a dropped installation or another database: never to be stored
	later, // not now: the catalog must be read again first, or its table is locked
};
// Drops are counted as stored, so that pressure no longer counts them, and logged.
RecordFate record_fate(const engram::core::RecordView &record);
