#include "core/ring.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <new>

namespace engram::core {

namespace {

constexpr std::uint64_t k_ring_magic = 0x454e4752414d5247ULL; // "ENGRAMRG"
constexpr std::uint64_t k_lap_mask = (std::uint64_t{1} << 23) - 1;

struct RecordHeader {
	std::uint32_t payload_bytes;
	std::uint32_t stamp;
	std::uint64_t generation;
};
static_assert(sizeof(RecordHeader) == k_ring_record_header_bytes);

constexpr std::uint64_t
make_word(RecordState state, std::uint32_t length, std::uint32_t owner, std::uint64_t lap) noexcept
{
	return static_cast<std::uint64_t>(state) | (static_cast<std::uint64_t>(length) << 3) |
		   (static_cast<std::uint64_t>(owner) << 19) | ((lap & k_lap_mask) << 41);
}
constexpr RecordState
state_of(std::uint64_t w) noexcept
{
	return static_cast<RecordState>(w & 7);
}
constexpr std::uint32_t
length_of(std::uint64_t w) noexcept
{
	return static_cast<std::uint32_t>((w >> 3) & 0xFFFF);
}
constexpr std::uint32_t
owner_of(std::uint64_t w) noexcept
{
	return static_cast<std::uint32_t>((w >> 19) & k_ring_max_owner);
}
constexpr std::uint64_t
lap_of(std::uint64_t w) noexcept
{
	return w >> 41;
}
constexpr std::uint64_t
with_state(std::uint64_t w, RecordState s) noexcept
{
	return (w & ~std::uint64_t{7}) | static_cast<std::uint64_t>(s);
}

constexpr std::size_t
align64(std::size_t n) noexcept
{
	return (n + 63) & ~std::size_t{63};
}

} // namespace

bool
process_alive(std::uint32_t pid) noexcept
{
	return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

std::size_t
Ring::region_bytes(std::size_t capacity_bytes) noexcept
{
	const std::size_t cells = std::max<std::size_t>(capacity_bytes / k_ring_cell_bytes, 2);
	return align64(sizeof(RingHeader)) + align64(cells * sizeof(std::uint64_t)) + cells * k_ring_cell_bytes;
}

Ring
Ring::create(std::byte *region, std::size_t capacity_bytes, OwnerAlive alive) noexcept
{
	const std::size_t cells = std::max<std::size_t>(capacity_bytes / k_ring_cell_bytes, 2);
	auto *h = new (region) RingHeader{};
	h->magic = k_ring_magic;
	h->cells = cells;
	h->words_offset = align64(sizeof(RingHeader));
	h->data_offset = h->words_offset + align64(cells * sizeof(std::uint64_t));
	auto *words = reinterpret_cast<std::atomic<std::uint64_t> *>(region + h->words_offset);
	for (std::size_t i = 0; i < cells; ++i)
		new (&words[i]) std::atomic<std::uint64_t>(make_word(RecordState::free, 0, 0, 0));
	return Ring(region, alive);
}

std::atomic<std::uint64_t> &
Ring::word(std::uint64_t position) const noexcept
{
	auto *words = reinterpret_cast<std::atomic<std::uint64_t> *>(base_ + header()->words_offset);
	return words[position % header()->cells];
}

std::byte *
Ring::cell(std::uint64_t position) const noexcept
{
	return base_ + header()->data_offset + (position % header()->cells) * k_ring_cell_bytes;
}

std::size_t
Ring::max_payload_bytes() const noexcept
{
	const std::uint64_t cells = std::min<std::uint64_t>(header()->cells, k_ring_max_record_cells);
	return cells * k_ring_cell_bytes - k_ring_record_header_bytes;
}

std::uint64_t
Ring::used_cells() const noexcept
{
	const std::uint64_t head = header()->head.load(std::memory_order_acquire);
	const std::uint64_t tail = header()->tail.load(std::memory_order_acquire);
	return tail > head ? tail - head : 0;
}

Reservation
Ring::try_reserve(std::size_t payload_bytes, std::uint32_t owner) noexcept
{
	RingHeader *h = header();
	const std::uint64_t n = h->cells;
	if (payload_bytes > max_payload_bytes())
		return {ReserveStatus::too_large, 0, {}};
	const auto length = static_cast<std::uint32_t>(
		(k_ring_record_header_bytes + payload_bytes + k_ring_cell_bytes - 1) / k_ring_cell_bytes);
	for (;;) {
		const std::uint64_t t = h->tail.load(std::memory_order_acquire);
		const std::uint64_t lap = t / n;
		std::atomic<std::uint64_t> &w = word(t);
		const std::uint64_t current = w.load(std::memory_order_acquire);
		if (lap_of(current) != (lap & k_lap_mask)) {
			// Either our tail is stale or the cell still holds the previous lap.
			if (h->tail.load(std::memory_order_acquire) == t && t + 1 > h->head.load(std::memory_order_acquire) + n)
				return {ReserveStatus::full, 0, {}};
			continue;
		}
		if (state_of(current) != RecordState::free) {
			// Someone claimed this position: help the hint along and retry.
			std::uint64_t expected = t;
			h->tail.compare_exchange_strong(expected, t + length_of(current), std::memory_order_acq_rel);
			continue;
		}
		const std::uint64_t contiguous = n - t % n;
		const bool wraps = length > contiguous;
		const std::uint64_t claim = wraps ? contiguous : length;
		if (t + claim > h->head.load(std::memory_order_acquire) + n)
			return {ReserveStatus::full, 0, {}};
		const RecordState state = wraps ? RecordState::pad : RecordState::reserved;
		std::uint64_t expected_word = current;
		if (!w.compare_exchange_strong(expected_word, make_word(state, static_cast<std::uint32_t>(claim), owner, lap),
									   std::memory_order_acq_rel))
			continue;
		std::uint64_t expected = t;
		h->tail.compare_exchange_strong(expected, t + claim, std::memory_order_acq_rel);
		if (wraps)
			continue;
		auto *rh = reinterpret_cast<RecordHeader *>(cell(t));
		rh->payload_bytes = static_cast<std::uint32_t>(payload_bytes);
		rh->generation = 0;
		return {ReserveStatus::ok, t, {cell(t) + k_ring_record_header_bytes, payload_bytes}};
	}
}

std::uint64_t
Ring::commit(std::span<const std::uint64_t> positions, std::uint32_t stamp) noexcept
{
	RingHeader *h = header();
	for (std::size_t i = 0; i < positions.size(); ++i) {
		std::uint64_t w = word(positions[i]).load(std::memory_order_relaxed);
		if (state_of(w) == RecordState::reserved &&
			word(positions[i])
				.compare_exchange_strong(w, with_state(w, RecordState::committing), std::memory_order_acq_rel))
			continue;
		// Abandoned under us: withdraw the records already marked so that the
		// consumer is not left waiting behind them.
		for (std::size_t j = 0; j < i; ++j) {
			const std::uint64_t marked = word(positions[j]).load(std::memory_order_relaxed);
			word(positions[j]).store(with_state(marked, RecordState::cancelled), std::memory_order_release);
		}
		return 0;
	}
	const std::uint64_t generation = h->generation.fetch_add(1, std::memory_order_acq_rel) + 1;
	for (std::uint64_t p : positions) {
		reinterpret_cast<RecordHeader *>(cell(p))->generation = generation;
		reinterpret_cast<RecordHeader *>(cell(p))->stamp = stamp;
		const std::uint64_t w = word(p).load(std::memory_order_relaxed);
		word(p).store(with_state(w, RecordState::committed), std::memory_order_release);
	}
	h->committed_records.fetch_add(positions.size(), std::memory_order_relaxed);
	return generation;
}

void
Ring::cancel(std::uint64_t position) noexcept
{
	std::uint64_t w = word(position).load(std::memory_order_relaxed);
	if (state_of(w) == RecordState::reserved)
		word(position).compare_exchange_strong(w, with_state(w, RecordState::cancelled), std::memory_order_acq_rel);
}

void
Ring::seed_generation(std::uint64_t floor) noexcept
{
	RingHeader *h = header();
	std::uint64_t g = h->generation.load(std::memory_order_acquire);
	while (g < floor && !h->generation.compare_exchange_weak(g, floor, std::memory_order_acq_rel))
		;
}

bool
Ring::try_acquire_consumer(std::uint32_t token) noexcept
{
	std::atomic<std::uint32_t> &c = header()->consumer;
	std::uint32_t holder = c.load(std::memory_order_acquire);
	if (holder == token)
		return true;
	if (holder != 0 && alive_(holder))
		return false;
	return c.compare_exchange_strong(holder, token, std::memory_order_acq_rel);
}

void
Ring::release_consumer(std::uint32_t token) noexcept
{
	std::uint32_t expected = token;
	header()->consumer.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
}

void
Ring::free_cells(std::uint64_t position, std::uint32_t length) noexcept
{
	// Consumed records are scrubbed: a forgotten observation's vector must not
	// outlive its erasure in a ring cell that no record has reused yet. No
	// producer touches these cells before the release stores below.
	std::memset(cell(position), 0, std::size_t{length} * k_ring_cell_bytes);
	const std::uint64_t next_lap = position / header()->cells + 1;
	const std::uint64_t free_word = make_word(RecordState::free, 0, 0, next_lap);
	for (std::uint32_t i = 0; i < length; ++i)
		word(position + i).store(free_word, std::memory_order_release);
	header()->head.store(position + length, std::memory_order_release);
}

RecordView
Ring::peek() noexcept
{
	RingHeader *h = header();
	for (;;) {
		const std::uint64_t head = h->head.load(std::memory_order_relaxed);
		std::atomic<std::uint64_t> &w = word(head);
		std::uint64_t current = w.load(std::memory_order_acquire);
		if (lap_of(current) != ((head / h->cells) & k_lap_mask) || state_of(current) == RecordState::free)
			return {PeekStatus::empty, head, 0, {}, 0};
		switch (state_of(current)) {
		case RecordState::reserved:
		case RecordState::committing:
			if (alive_(owner_of(current)))
				return {PeekStatus::blocked, head, 0, {}, 0};
			if (!w.compare_exchange_strong(current, with_state(current, RecordState::abandoned),
										   std::memory_order_acq_rel))
				continue;
			h->abandoned_records.fetch_add(1, std::memory_order_relaxed);
			free_cells(head, length_of(current));
			continue;
		case RecordState::committed: {
			const auto *rh = reinterpret_cast<const RecordHeader *>(cell(head));
			return {PeekStatus::ready,
					head,
					rh->generation,
					{cell(head) + k_ring_record_header_bytes, rh->payload_bytes},
					rh->stamp};
		}
		default:
			free_cells(head, length_of(current));
			continue;
		}
	}
}

void
Ring::pop(const RecordView &record) noexcept
{
	const std::uint64_t w = word(record.position).load(std::memory_order_relaxed);
	free_cells(record.position, length_of(w));
	header()->consumed_records.fetch_add(1, std::memory_order_relaxed);
}

std::optional<std::uint64_t>
Ring::advance_published() noexcept
{
	RingHeader *h = header();
	// Read the counter before the tail: any generation <= safe was taken by a
	// commit whose records were claimed before this tail (see the header).
	std::uint64_t safe = h->generation.load(std::memory_order_acquire);
	const std::uint64_t tail = h->tail.load(std::memory_order_acquire);
	std::uint64_t p = h->head.load(std::memory_order_relaxed);
	while (p < tail) {
		const std::uint64_t w = word(p).load(std::memory_order_acquire);
		if (lap_of(w) != ((p / h->cells) & k_lap_mask) || state_of(w) == RecordState::free)
			break;
		if (state_of(w) == RecordState::committing)
			return std::nullopt;
		if (state_of(w) == RecordState::committed)
			safe = std::min(safe, reinterpret_cast<const RecordHeader *>(cell(p))->generation - 1);
		p += length_of(w);
	}
	std::uint64_t published = h->published.load(std::memory_order_acquire);
	while (published < safe && !h->published.compare_exchange_weak(published, safe, std::memory_order_acq_rel))
		;
	return std::max(published, safe);
}

} // namespace engram::core
