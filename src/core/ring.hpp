// Ring: the bounded, position-independent, multi-producer queue that carries
// committed observations from backends to the worker pool.
//
// Layout. One region: a header, an array of 64-bit cell words and an array of
// 64-byte cells. A record occupies consecutive cells and never wraps (a PAD
// record fills the tail end of the array instead). Positions are monotonic
// 64-bit cell counters; cell = position % cells, lap = position / cells.
//
// The cell word of a record's first cell is its whole state:
//   [lap:23][owner:22][length:16][state:3]
// A producer claims a record by one CAS on that word from FREE(lap) to
// RESERVED(lap, owner, length); `tail` is only a hint that anyone may advance
// past a claimed record, so a producer that stalls or dies after its claim
// never hides the record's length or owner from the others (lock-free for
// producers). The consumer frees every cell of a consumed record by storing
// FREE(lap + 1), which is what lets a later claim prove that the cell is free
// for its own lap (no ABA until 2^23 laps elapse during one stalled claim).
//
// Life of a record: RESERVED (payload being written, transaction not yet
// committed) -> COMMITTING -> COMMITTED(generation), or -> CANCELLED. Records
// are consumed in position order, so a RESERVED record blocks the ones behind
// it until its owner commits or cancels. A consumer that finds a RESERVED or
// COMMITTING record whose owner process is dead marks it ABANDONED and skips it
// (the owner, being dead, cannot race), so a producer killed mid-write never
// wedges the consumers; its transaction never committed through the ring.
//
// Generations: commit() stamps all records of one transaction with one value
// taken from a single counter after they are marked COMMITTING. This makes
// the published generation computable: see published_generation().
//
// Consumers: several processes may drain, one at a time, under a consumer
// token taken with CAS (stolen from a dead holder). A consumer that dies after
// processing a record but before pop() leaves it to be processed again by the
// next holder; in the extension that case cannot arise, because any process
// killed while attached to shared memory makes the postmaster reinitialise it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>

#include "core/no_postgres.hpp"

namespace engram::core {

inline constexpr std::size_t k_ring_cell_bytes = 64;
inline constexpr std::size_t k_ring_record_header_bytes = 16;
inline constexpr std::uint32_t k_ring_max_record_cells = 0xFFFF;
inline constexpr std::uint32_t k_ring_max_owner = (1u << 22) - 1;

enum class RecordState : std::uint8_t {
	free = 0,
	reserved = 1,
	committing = 2,
	committed = 3,
	cancelled = 4,
	pad = 5,
	abandoned = 6,
};

struct alignas(64) RingHeader {
	std::uint64_t magic;
	std::uint64_t cells;
	std::uint64_t words_offset;
	std::uint64_t data_offset;
	alignas(64) std::atomic<std::uint64_t> tail;
	alignas(64) std::atomic<std::uint64_t> head;
	alignas(64) std::atomic<std::uint32_t> consumer;
	std::atomic<std::uint64_t> generation;
	std::atomic<std::uint64_t> published;
	std::atomic<std::uint64_t> committed_records;
	std::atomic<std::uint64_t> consumed_records;
	std::atomic<std::uint64_t> abandoned_records;
};
static_assert(std::is_standard_layout_v<RingHeader>);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// Is the process (or test thread) behind an owner token still alive?
using OwnerAlive = bool (*)(std::uint32_t owner) noexcept;

// The default liveness test: owner tokens are process ids.
bool process_alive(std::uint32_t pid) noexcept;

enum class ReserveStatus : std::uint8_t { ok, full, too_large };

struct Reservation {
	ReserveStatus status;
	std::uint64_t position;
	std::span<std::byte> payload;
};

enum class PeekStatus : std::uint8_t { ready, empty, blocked };

struct RecordView {
	PeekStatus status;
	std::uint64_t position;
	std::uint64_t generation;
	std::span<const std::byte> payload;
	std::uint32_t stamp; // what the committer passed to commit()
};

class Ring {
public:
	// Bytes a region needs to hold `capacity_bytes` of records.
	static std::size_t region_bytes(std::size_t capacity_bytes) noexcept;
	// Lays out a fresh ring over a zeroed or garbage region of region_bytes(capacity).
	static Ring create(std::byte *region, std::size_t capacity_bytes, OwnerAlive alive = process_alive) noexcept;
	// Uses a ring that create() laid out, possibly in another process at another address.
	explicit Ring(std::byte *region, OwnerAlive alive = process_alive) noexcept : base_(region), alive_(alive) {}

	// Largest payload a single record may carry in this ring.
	std::size_t max_payload_bytes() const noexcept;

	// --- producers ---------------------------------------------------------
	Reservation try_reserve(std::size_t payload_bytes, std::uint32_t owner) noexcept;
	// Publishes every record of one transaction under one new generation,
	// which it returns; 0 if the consumer abandoned one of them (only possible
	// if the liveness test wrongly found the owner dead). `stamp` is carried
	// to the consumer as it is (the extension passes the commit time, so the
	// workers can tell how long a record waited).
	std::uint64_t commit(std::span<const std::uint64_t> positions, std::uint32_t stamp = 0) noexcept;
	void cancel(std::uint64_t position) noexcept;

	// --- consumers ---------------------------------------------------------
	bool try_acquire_consumer(std::uint32_t token) noexcept;
	void release_consumer(std::uint32_t token) noexcept;
	// The record at the head, skipping cancelled, padding and abandoned ones.
	// Only the consumer token holder may call peek/pop/published_generation.
	RecordView peek() noexcept;
	// Frees the record peek() returned as ready.
	void pop(const RecordView &record) noexcept;
	// The highest generation G such that every record committed with a
	// generation <= G has been popped; nullopt while a commit is half way.
	// Raises the shared published generation to it and returns it.
	std::optional<std::uint64_t> advance_published() noexcept;

	// --- observers (any process, any time) ----------------------------------
	std::uint64_t published_generation() const noexcept { return header()->published.load(std::memory_order_acquire); }
	std::uint64_t last_generation() const noexcept { return header()->generation.load(std::memory_order_acquire); }
	// Raises the generation counter to at least `floor` (used to continue a
	// sequence that must stay monotonic across restarts). The published
	// generation follows at the next advance_published().
	void seed_generation(std::uint64_t floor) noexcept;
	std::uint64_t used_cells() const noexcept;
	std::uint64_t head_position() const noexcept { return header()->head.load(std::memory_order_acquire); }
	std::uint64_t tail_position() const noexcept { return header()->tail.load(std::memory_order_acquire); }
	std::uint64_t capacity_cells() const noexcept { return header()->cells; }
	double fill() const noexcept { return static_cast<double>(used_cells()) / static_cast<double>(capacity_cells()); }
	std::uint64_t committed_records() const noexcept
	{
		return header()->committed_records.load(std::memory_order_relaxed);
	}
	std::uint64_t consumed_records() const noexcept
	{
		return header()->consumed_records.load(std::memory_order_relaxed);
	}
	std::uint64_t abandoned_records() const noexcept
	{
		return header()->abandoned_records.load(std::memory_order_relaxed);
	}

private:
	RingHeader *header() const noexcept { return reinterpret_cast<RingHeader *>(base_); }
	std::atomic<std::uint64_t> &word(std::uint64_t position) const noexcept;
	std::byte *cell(std::uint64_t position) const noexcept;
	void free_cells(std::uint64_t position, std::uint32_t length) noexcept;

	std::byte *base_;
	OwnerAlive alive_;
};

} // namespace engram::core
