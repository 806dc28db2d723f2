// SpaceBacklog: how much work each space has ahead of it in the pipeline, so
// that admission can be fair between spaces without walking every space on
// every commit.
//
// One entry per space with backlog, in an open-addressing table in shared
// memory (offsets only), holding rows, not bytes:
//   queued    rows in ring records, reserved or committed, not yet stored;
//             admit() adds a transaction's rows before it reserves its
//             records, withdraw() takes them back if it aborts, and the
//             worker's consumed() takes them off when it pops a record;
//   unlinked  rows stored in the space's graphs and not linked yet;
//             consumed() adds what it stored, and the workers' census()
//             replaces it with what the graphs say, so linking (which runs on
//             threads that know nothing of this table) is accounted there.
// The queued counts are exact: every record's rows are added once and taken
// off once. The unlinked counts lag the link threads by at most a census.
//
// Every operation holds one short spin lock: a few probes and additions for a
// commit or a popped record; for a census, one probe per measured space, and
// a pass over the table only when an entry it did not measure still counts
// unlinked rows (so a census costs nothing extra in a directory of 100,000
// spaces of which a few have work). Totals and
// the number of active spaces are published as atomics for lock-free readers.
// An entry whose space has neither queued nor unlinked rows is removed, so the
// table holds only spaces with work (at most twice the directory's size
// before admit() reports no room, which the caller treats as a full pipeline).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include "core/pressure.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

struct SpaceBacklogEntry {
	std::uint32_t occupied;
	std::int32_t space_id;
	std::uint32_t dim;      // of the space's rows: their bytes are row_backlog_bytes(dim)
	std::uint32_t census;   // the census that last measured `unlinked`
	std::uint64_t queued;   // rows
	std::uint64_t unlinked; // rows
};
static_assert(sizeof(SpaceBacklogEntry) == 32);

struct SpaceBacklogHeader {
	std::uint64_t magic;
	std::uint32_t capacity; // entries, a power of two
	std::uint32_t census;   // under the lock
	std::atomic<std::uint32_t> lock;
	std::uint32_t occupied;      // entries in use, under the lock
	std::uint32_t with_unlinked; // entries whose unlinked count is not 0, under the lock
	// Published under the lock for readers that take none.
	std::atomic<std::uint64_t> queued_rows;
	std::atomic<std::uint64_t> unlinked_rows;
	std::atomic<std::uint64_t> queued_bytes;
	std::atomic<std::uint64_t> unlinked_bytes;
	std::atomic<std::uint32_t> active_spaces;
};
static_assert(std::is_standard_layout_v<SpaceBacklogHeader>);

// Rows a transaction brings to one space.
struct BacklogDemand {
	std::int32_t space_id;
	std::uint32_t dim;
	std::uint64_t rows;
};

enum class AdmitStatus : std::uint8_t { admitted, over_share, no_room };

struct AdmitVerdict {
	AdmitStatus status;
	std::int32_t space_id;  // the space held back (over_share, no_room)
	double space_fill;      // its fill (over_share)
	PipelineState pipeline; // as the decision saw it
};

struct SpaceLoad {
	std::uint64_t queued_rows;
	std::uint64_t unlinked_rows;
	std::uint32_t dim;
};

// One space's unlinked rows as the workers measured them in its graphs.
struct CensusRow {
	std::int32_t space_id;
	std::uint32_t dim;
	std::uint64_t unlinked_rows;
};

class SpaceBacklog {
public:
	// Bytes a region needs to follow `spaces` spaces with work at once.
	static std::size_t region_bytes(std::uint32_t spaces) noexcept;
	static SpaceBacklog create(std::byte *region, std::uint32_t spaces) noexcept;
	explicit SpaceBacklog(std::byte *region) noexcept : base_(region) {}

	// Completes `pipeline` with the backlog and the active spaces, and adds
	// every demand if each of its spaces stays below `overloaded` by
	// space_fill(); otherwise adds nothing. The decision and the additions
	// happen under one lock, so two commits of one space cannot both slip in
	// on the same reading.
	AdmitVerdict admit(std::span<const BacklogDemand> demands, PipelineState pipeline, double overloaded) noexcept;
	// Takes back what an admit() added (its transaction aborted).
	void withdraw(std::span<const BacklogDemand> demands) noexcept;
	// A record of `rows` rows of the space left the ring; `stored` of them were
	// appended to its graphs.
	void consumed(std::int32_t space_id, std::uint32_t dim, std::uint64_t rows, std::uint64_t stored) noexcept;
	// Every space's unlinked rows, measured in the graphs; spaces absent from
	// `rows` have none.
	void census(std::span<const CensusRow> rows) noexcept;

	SpaceLoad space(std::int32_t space_id) const noexcept;
	std::uint64_t queued_rows() const noexcept { return header()->queued_rows.load(std::memory_order_acquire); }
	std::uint64_t unlinked_rows() const noexcept { return header()->unlinked_rows.load(std::memory_order_acquire); }
	std::uint64_t queued_bytes() const noexcept { return header()->queued_bytes.load(std::memory_order_acquire); }
	std::uint64_t unlinked_bytes() const noexcept { return header()->unlinked_bytes.load(std::memory_order_acquire); }
	std::uint32_t active_spaces() const noexcept { return header()->active_spaces.load(std::memory_order_acquire); }
	std::uint32_t capacity() const noexcept { return header()->capacity; }

private:
	SpaceBacklogHeader *header() const noexcept { return reinterpret_cast<SpaceBacklogHeader *>(base_); }
	SpaceBacklogEntry *entries() const noexcept;
	// Under the lock: the space's entry, or nullptr.
	SpaceBacklogEntry *find(std::int32_t space_id) const noexcept;
	// Under the lock: the space's entry, made if missing; nullptr if the table is full.
	SpaceBacklogEntry *find_or_make(std::int32_t space_id, std::uint32_t dim) noexcept;
	// Under the lock: removes the entry if it holds nothing any more.
	void drop_if_idle(SpaceBacklogEntry *e) noexcept;
	// Under the lock: applies a change to an entry's counts and the totals.
	void change(SpaceBacklogEntry *e, std::int64_t queued_delta, std::int64_t unlinked_delta) noexcept;
	void lock() const noexcept;
	void unlock() const noexcept;

	std::byte *base_;
};

} // namespace engram::core
