// The store step of the workers: observations into the spaces' graphs, from
// ring records or from engram.observations. Main thread only, and only while
// holding the ring's consumer token, which is also what allows destroying a
// graph (drop, quarantine, end of a rebuild): so the code here reads graph
// offsets without pinning them.
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
	// The generation the load gives the rows it reads from the table.
	std::uint64_t generation;
	TransactionId xmin, xmax;
	TransactionId *xip; // in TopMemoryContext
	std::uint32_t xcnt;
};

extern LoadFilter load_filter;

// Starts (or continues) a transaction with SPI and a snapshot for table reads.
void ensure_transaction(void);
void end_transaction(void);

// The space's slot, installed from engram.space_catalog if it has none (a
// space created by engram 0.1.0's create_space); nullptr if the space no
// longer exists or has no slot (its records are then dropped).
SpaceSlot *slot_for(std::int32_t space_id);

// Whether the space takes rows now: not quarantined, and with a graph to
// take them (created on its first rows; a space that cannot have one is
// quarantined).
bool space_takes_rows(SpaceSlot *slot);

// Stores one ready ring record, which is then consumed whatever happens:
// a space that cannot take it is quarantined (quarantine.hpp). Returns how
// many observations were stored.
std::int64_t store_record(const engram::core::RecordView &record);

// Before the published generation moves on: widens the snapshot gap of
// every space with an open read-back hole over every generation that can be
// published now, and closes the holes the drain has passed (see
// worker_store.cpp).
void cover_read_backs(void);

enum class AppendResult {
	ok,
	no_memory, // the space's index cannot grow in engram.memory_limit
	reserve,   // it could, but it holds the most memory and would take engram.memory_reserve
	damaged,   // the rows were refused (status says why)
};

// Why a space whose rows could not be appended is quarantined.
QuarantineCause quarantine_cause_of(AppendResult result);

// Appends rows to the graphs of a space (all of them but `skip`, which may be
// -1); anything but ok leaves the space to be quarantined. A replacement
// graph that cannot grow is given up (the rebuild fails) rather than holding
// the space back, unless it is the only graph (a space rebuilt after a
// quarantine). Rows with a commit stamp (not 0) are timed until they are
// linked into the graph recalls use (core/link_stamps.hpp).
AppendResult append_rows(SpaceSlot *slot, const float *vectors, const engram::core::NodeData *rows, std::uint32_t n,
						 int skip, std::uint32_t stamp, engram::core::HnswStatus *status = nullptr);

// Whether the space, having just grown, now holds the most memory while the
// arena's free part is below engram.memory_reserve and other spaces exist.
bool takes_the_reserve(const SpaceSlot *slot);

// Observations the space's index holds (the larger of its graphs).
std::uint64_t space_observations(const SpaceSlot *slot);

// Gives up a rebuild in progress: its graph is destroyed, the old one stays.
void abandon_rebuild(SpaceSlot *slot, const char *reason);

// Whether the filter's snapshot saw the transaction.
bool filter_sees(TransactionId xid);
// Copies a snapshot into load_filter (the caller sets the other fields).
void filter_from_snapshot(Snapshot snapshot);
void filter_clear(void);
// Forgets the progress of a half-stored id-range record (its graphs are gone).
void progress_reset(void);
