// The space directory: one slot per space in shared memory, found from the
// space's id in O(1) (core/space_table.hpp), with the space's shape, its
// graphs (core/index_slot.hpp) and its health.
//
// Size. engram.max_spaces slots, fixed at server start; each costs
// sizeof(SpaceSlot) + sizeof(IndexSlot) + 4 bytes of free list + 4 bytes of
// duties + 16 to 32 bytes of table buckets, about 440 bytes, and the spaces'
// backlog table (core/space_backlog.hpp) 64 more: about 600 bytes a slot in
// all with alignment (60 MB for the default 100,000). A space costs nothing
// more until its first rows arrive: its graph is made then.
// create_space takes its slot at once (an insert trigger on
// engram.space_catalog), so a full directory refuses the new space with a
// clear error rather than failing later in a worker.
//
// Spaces without a slot. After a start, the loader gives slots to the
// catalog's spaces in id order; if engram.max_spaces was lowered below their
// number, the rest get none. `homeless_from` remembers the smallest id that
// was refused: a catalog space with no slot and an id at or above it is
// quarantined (its rows are not indexed), until engram.rebuild() finds it a
// slot. Spaces created later always have a slot, so the rule never catches
// a healthy space.
//
// Locking. A slot changes hands, and the table changes, only under the
// directory LWLock held exclusively, and a slot is freed only after its
// graphs were retired and every pin on them dropped; so a process that found
// a slot under the shared lock and pinned a graph can use it after letting
// the lock go. Slots are handed out lowest first, and `in_use` (the number
// of slots ever used) bounds every walk over them.
//
// Duties. The workers look after spaces that wait for something (a creation
// or a drop to resolve, a rebuild, a compaction, a read-back to cover) at
// every batch they drain. Walking every slot for that would read 440 bytes
// per space, 44 MB at 100,000 spaces, ten times a second per worker; so each
// slot has a duty word in a dense array beside the slots, one bit per kind
// of wait, and the walks read only those (400 KB at 100,000 spaces) and look
// at the slots whose bit is set. A bit may be set with nothing left to do
// (the walk then clears it), but is never clear while work waits: whoever
// makes the work sets the bit after it (directory_owe), and a walk clears a
// bit only after finding no work, then looks once more
// (directory_visit_owing). A walk that fails half-way leaves the bit set.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include "core/hnsw_graph.hpp"
#include "core/index_slot.hpp"
#include "core/space_table.hpp"
#include "pg/catalog.hpp"

enum SpaceSlotState : std::uint32_t { SPACE_SLOT_FREE = 0, SPACE_SLOT_LIVE = 1 };

// What a space's index can do (the `state` column of engram.spaces).
enum SpaceHealth : std::uint32_t {
	SPACE_READY = 0,       // stores, links and answers
	SPACE_LOADING = 1,     // rebuilt from the table after a quarantine; no graph answers yet
	SPACE_QUARANTINED = 2, // its index was given up; see QuarantineCause
};

enum QuarantineCause : std::uint32_t {
	QUARANTINE_NONE = 0,
	QUARANTINE_MEMORY_LIMIT,   // the arena had no room for its next rows
	QUARANTINE_MEMORY_RESERVE, // it holds the most memory and would take engram.memory_reserve
	QUARANTINE_UNSTORABLE,     // a record of it could not be read or stored (cause_text says why)
};

inline constexpr int k_cause_text_bytes = 128;

// What the space's graph file holds (graph_files.hpp); written by the engram
// writer after each write, read by engram.spaces and by the writer itself to
// decide when the file is due again. All zero: the space has no file.
struct SpaceFileState {
	std::atomic<std::uint64_t> observations; // nodes in the file
	std::atomic<std::uint64_t> linked;       // of those, linked when it was written
	std::atomic<std::uint64_t> forgotten;    // of those, forgotten when it was written
	std::atomic<std::uint64_t> graph;        // header offset of the graph it was written from
	std::atomic<std::uint64_t> generation;   // published generation when it was written
	std::atomic<std::uint64_t> bytes;        // its size
	std::atomic<std::int64_t> written_at;    // TimestampTz of the write
	std::atomic<std::int64_t> attempted_at;  // of the last attempt, failed or not
	// Transactions that deleted or updated rows of the space and have not
	// finished, and the latest generation such a transaction committed at:
	// the writer writes a file only while none is in flight and every one
	// has been stored (writer.cpp), so the file's revision is exact.
	std::atomic<std::uint32_t> revisions_in_flight;
	std::atomic<std::uint64_t> revision_generation;
	// Compactions so far, and how many of them a file written since covers:
	// while they differ, the file may hold erased vectors and is due at once.
	std::atomic<std::uint32_t> erase_requested;
	std::atomic<std::uint32_t> erase_written;
};

struct SpaceSlot {
	std::atomic<std::uint32_t> state;
	std::int32_t space_id;
	std::uint32_t dim;
	std::uint32_t metric; // engram::core::Metric
	std::uint32_t m;
	std::uint32_t ef_construction;
	std::uint32_t encoding; // engram::core::Encoding
	char name[k_space_name_bytes];
	// Transaction (possibly a subtransaction) that created the space; the
	// worker frees the slot if it aborted.
	std::atomic<std::uint32_t> create_xid;
	// Transaction (possibly a subtransaction) that ran drop_space on it; the
	// worker frees the slot once that transaction is known to have committed.
	std::atomic<std::uint32_t> drop_xid;
	// engram.rebuild() sets rebuild_requested and waits for one of the
	// counters to move; a worker builds the replacement graph meanwhile.
	std::atomic<std::uint32_t> rebuild_requested;
	std::atomic<std::uint32_t> rebuilds_finished;
	std::atomic<std::uint32_t> rebuilds_failed;
	// SpaceHealth. The cause fields below are written under the exclusive
	// directory lock before health turns QUARANTINED, and read under the
	// shared lock.
	std::atomic<std::uint32_t> health;
	std::uint32_t cause;              // QuarantineCause
	std::uint64_t cause_observations; // rows its index held when it was given up
	std::uint64_t cause_used_bytes, cause_capacity_bytes;
	std::int64_t cause_time; // TimestampTz
	char cause_text[k_cause_text_bytes];
	// Observations committed since the quarantine, consumed and not indexed.
	std::atomic<std::uint64_t> dropped_observations;
	// Snapshots (as_of) at generations [from, to) are refused: some rows of
	// the index were given a later generation than the one they committed
	// at, when they were loaded from the table (worker_load.cpp).
	std::atomic<std::uint64_t> snapshot_gap_from;
	std::atomic<std::uint64_t> snapshot_gap_to;
	// A bulk transaction's rows read back from the table (an id-range
	// record) were deleted or changed since its commit: snapshots from
	// generation read_back_from on stay in the gap until the drain has passed
	// ring position read_back_until (0: no such read-back), behind which lie
	// the records of every transaction that could have changed them
	// (worker_store.cpp). Token holder only.
	std::atomic<std::uint64_t> read_back_from;
	std::atomic<std::uint64_t> read_back_until;
	// When the oldest forget not yet erased was stored (TimestampTz, 0 for
	// none): compaction is due engram.erase_within / 2 after it
	// (worker_compact.cpp).
	std::atomic<std::int64_t> forgotten_since;
	SpaceFileState file;
	// When the rebuild in progress started (TimestampTz) and the worker that
	// started it, written before rebuild_requested turns 2: what
	// engram.progress shows of a rebuild being linked (pg/progress.hpp).
	std::atomic<std::int64_t> rebuild_started_at;
	std::atomic<std::int32_t> rebuild_started_by;
};

// The kinds of wait a duty word records.
enum SlotDuty : std::uint32_t {
	DUTY_RESOLVE = 1u << 0,   // create_xid or drop_xid to resolve (worker.cpp)
	DUTY_REBUILD = 1u << 1,   // rebuild_requested (worker_load.cpp)
	DUTY_COMPACT = 1u << 2,   // forgotten_since (worker_compact.cpp)
	DUTY_READ_BACK = 1u << 3, // read_back_until (worker_store.cpp)
	DUTY_LINK = 1u << 4,      // vectors stored and not linked yet (link threads, census)
};

struct SpaceDirectory {
	std::uint32_t capacity;     // engram.max_spaces
	std::uint32_t bucket_count; // of the id table
	std::atomic<std::uint32_t> in_use;
	std::uint32_t free_count;
	std::atomic<std::int32_t> homeless_from; // INT32_MAX: every catalog space has a slot
	std::uint32_t unused;
	// Offsets from the EngramShared header.
	std::uint64_t slots_offset, indexes_offset, buckets_offset, free_offset, duties_offset;
};

// Shared-memory bytes of a directory of `capacity` slots, and laying it out
// at `at` (offset `offset` from `base`).
std::size_t directory_bytes(std::uint32_t capacity);
void directory_create(SpaceDirectory &directory, std::byte *base, std::uint64_t offset, std::uint32_t capacity);

struct LWLock *shared_directory_lock(void);

// Slots [0, in_use): every slot that was ever live; check `state`.
std::span<SpaceSlot> directory_slots(void);
// Every index slot and the count in use, for the link pools.
std::span<engram::core::IndexSlot> directory_indexes(void);
const std::atomic<std::uint32_t> &directory_in_use(void);
std::uint32_t directory_capacity(void);
// Slots taken (live, or freed by a worker soon); the caller holds the directory lock.
std::uint32_t directory_taken(void);

// Records that the slot waits for `duty`: call it after storing what the
// work is (any process, no lock needed).
void directory_owe(const SpaceSlot *slot, SlotDuty duty);
// The duty words of every slot, and the index of a slot among them.
std::span<std::atomic<std::uint32_t>> directory_duties(void);

// Calls visit(slot) for each slot in use whose `duty` bit is set, then
// clears the bit if owed(slot) says no work of that kind is left (false for
// a slot that is not live: visit may free it).
template <typename Visit, typename Owed>
void
directory_visit_owing(SlotDuty duty, Visit &&visit, Owed &&owed)
{
	const std::span<SpaceSlot> slots = directory_slots();
	const std::span<std::atomic<std::uint32_t>> duties = directory_duties();
	for (std::size_t i = 0; i < slots.size(); ++i) {
		if ((duties[i].load(std::memory_order_relaxed) & duty) == 0)
			continue;
		visit(slots[i]);
		if (owed(slots[i]))
			continue;
		duties[i].fetch_and(~static_cast<std::uint32_t>(duty));
		if (owed(slots[i])) // made again since the look above
			duties[i].fetch_or(duty);
	}
}

// Calls look(slot) for each slot in use whose `duty` bit is set, leaving the bits as they are.
template <typename Look>
void
directory_each_owing(SlotDuty duty, Look &&look)
{
	const std::span<SpaceSlot> slots = directory_slots();
	const std::span<std::atomic<std::uint32_t>> duties = directory_duties();
	for (std::size_t i = 0; i < slots.size(); ++i)
		if ((duties[i].load(std::memory_order_acquire) & duty) != 0)
			look(slots[i]);
}

// Lookups: the caller holds the directory lock (shared or exclusive).
SpaceSlot *directory_find(std::int32_t space_id);
// A catalog space that was refused a slot (meaningful once loading is done).
bool directory_homeless(std::int32_t space_id);

// Changes: the caller holds the directory lock exclusively.
// A slot for the space, ready and without graphs; nullptr if none is free.
// An existing slot of the space is returned as it is.
SpaceSlot *directory_install(const SpaceDefinition &definition, std::uint32_t create_xid);
// Remembers that the space was refused a slot.
void directory_mark_homeless(std::int32_t space_id);
void directory_forget_homeless(void);

// Retires the space's graphs, waits until no one uses them, frees them and the
// slot. Takes the directory lock itself; the caller must not hold it.
void directory_free(SpaceSlot *slot);
engram::core::IndexSlot &directory_index(const SpaceSlot *slot);
// Clears what the slot says of its space's graph file (it has none now).
void directory_forget_file(SpaceSlot *slot);
// The generations [from, to) whose snapshots the space's index cannot answer
// (SpaceSlot's gap): set it, or widen it to cover [from, to) as well. Called
// by the token holder, the only writer of a live slot's gap.
void directory_set_snapshot_gap(SpaceSlot *slot, std::uint64_t from, std::uint64_t to);
void directory_widen_snapshot_gap(SpaceSlot *slot, std::uint64_t from, std::uint64_t to);
engram::core::HnswConfig directory_config(const SpaceSlot *slot);
// A graph of a pinned index slot.
engram::core::HnswGraph pinned_graph(const engram::core::GraphPin &pin);
// Retires graphs[which] of the slot, waits for its pins to go, and destroys it.
void directory_destroy_graph(engram::core::IndexSlot &index, unsigned which);

// What became of the drop_space marked on a slot, or of the transaction that
// created it (no lock needed).
enum class DropOutcome { none, in_progress, committed, aborted };
DropOutcome directory_drop_outcome(const SpaceSlot *slot);
DropOutcome directory_create_outcome(const SpaceSlot *slot);
// A slot the workers will free but have not yet: its space's drop committed,
// or its creation rolled back.
bool directory_frees_pending(void);
