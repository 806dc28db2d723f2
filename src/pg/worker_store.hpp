// The store step of the workers: observations into the spaces' graphs, from
// ring records or from engram.observations. Main thread only, and only while
// holding the ring's consumer token, which is also what allows destroying a
// graph (drop, end of a rebuild): so the code here reads graph offsets
// without pinning them.
#pragma once

#include <cstdint>

#include "core/hnsw_graph.hpp"
#include "core/ring.hpp"
#include "pg/shared.hpp"

#include "pg/postgres.hpp"

// A snapshot of engram.observations that a load (start-up or rebuild) read,
// kept so that ring records the snapshot already saw are not stored twice.
// Records at positions below tail_mark whose transaction the snapshot saw are
// skipped: by every graph for the start-up load (space_id < 0), by the
// replacement graph only for a rebuild of space_id.
struct LoadFilter {
	bool active;
	std::int32_t space_id;
	unsigned replacement; // the graph a rebuild fills
	std::uint64_t tail_mark;
	TransactionId xmin, xmax;
	TransactionId *xip; // in TopMemoryContext
	std::uint32_t xcnt;
};

extern LoadFilter load_filter;

// Starts (or continues) a transaction with SPI and a snapshot for table reads.
void ensure_transaction(void);
void end_transaction(void);

// The space's slot, installed from engram.space_catalog on first use; nullptr
// if the space no longer exists (its records are then dropped).
SpaceSlot *slot_for(std::int32_t space_id);

// Stores one ready ring record whole and returns how many observations it
// held; -1 if its space cannot grow now (nothing was stored).
std::int64_t store_record(const engram::core::RecordView &record);

// Appends rows to the graphs of a space (all of them but `skip`, which may be
// -1); false if the current graph cannot grow, in which case nothing was
// appended. A replacement graph that cannot grow is given up (the rebuild
// fails) rather than holding the pipeline back.
bool append_rows(SpaceSlot *slot, const float *vectors, const engram::core::NodeData *rows, std::uint32_t n,
				 int skip);

// Gives up a rebuild in progress: its graph is destroyed, the old one stays.
void abandon_rebuild(SpaceSlot *slot, const char *reason);

// Copies a snapshot into load_filter (the caller sets the other fields).
void filter_from_snapshot(Snapshot snapshot);
void filter_clear(void);
