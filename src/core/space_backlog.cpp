#include "core/space_backlog.hpp"

#include <algorithm>
#include <bit>
#include <new>
#include <thread>

namespace engram::core {

namespace {

constexpr std::uint64_t k_backlog_magic = 0x454e4752414d424cULL; // "ENGRAMBL"

std::uint32_t
table_capacity(std::uint32_t spaces) noexcept
{
	return std::bit_ceil(std::max<std::uint32_t>(spaces, 32) * 2);
}

std::size_t
entries_offset(void) noexcept
{
	return (sizeof(SpaceBacklogHeader) + 63) & ~std::size_t{63};
}

std::uint32_t
home(std::int32_t space_id, std::uint32_t capacity) noexcept
{
	// Fibonacci hashing: consecutive ids (a serial) spread over the table.
	const std::uint64_t h = static_cast<std::uint64_t>(static_cast<std::uint32_t>(space_id)) * 0x9E3779B97F4A7C15ULL;
	return static_cast<std::uint32_t>(h >> 32) & (capacity - 1);
}

std::uint64_t
entry_bytes(const SpaceBacklogEntry &e) noexcept
{
	return (e.queued + e.unlinked) * row_backlog_bytes(e.dim);
}

bool
active(const SpaceBacklogEntry &e) noexcept
{
	return e.queued > 0 || e.unlinked > 0;
}

} // namespace

std::size_t
SpaceBacklog::region_bytes(std::uint32_t spaces) noexcept
{
	return entries_offset() + sizeof(SpaceBacklogEntry) * table_capacity(spaces);
}

SpaceBacklog
SpaceBacklog::create(std::byte *region, std::uint32_t spaces) noexcept
{
	auto *h = new (region) SpaceBacklogHeader{};
	h->magic = k_backlog_magic;
	h->capacity = table_capacity(spaces);
	auto *entries = reinterpret_cast<SpaceBacklogEntry *>(region + entries_offset());
	std::fill(entries, entries + h->capacity, SpaceBacklogEntry{});
	return SpaceBacklog(region);
}

SpaceBacklogEntry *
SpaceBacklog::entries() const noexcept
{
	return reinterpret_cast<SpaceBacklogEntry *>(base_ + entries_offset());
}

void
SpaceBacklog::lock() const noexcept
{
	std::atomic<std::uint32_t> &word = header()->lock;
	for (;;) {
		if (word.exchange(1, std::memory_order_acquire) == 0)
			return;
		while (word.load(std::memory_order_relaxed) != 0)
			std::this_thread::yield();
	}
}

void
SpaceBacklog::unlock() const noexcept
{
	header()->lock.store(0, std::memory_order_release);
}

SpaceBacklogEntry *
SpaceBacklog::find(std::int32_t space_id) const noexcept
{
	const std::uint32_t capacity = header()->capacity;
	SpaceBacklogEntry *table = entries();
	std::uint32_t i = home(space_id, capacity);
	for (std::uint32_t probes = 0; probes < capacity && table[i].occupied; ++probes) {
		if (table[i].space_id == space_id)
			return &table[i];
		i = (i + 1) & (capacity - 1);
	}
	return nullptr;
}

SpaceBacklogEntry *
SpaceBacklog::find_or_make(std::int32_t space_id, std::uint32_t dim) noexcept
{
	if (SpaceBacklogEntry *e = find(space_id))
		return e;
	SpaceBacklogHeader *h = header();
	// Kept at most three quarters full, so probes stay short.
	if (h->occupied + 1 > h->capacity / 4 * 3)
		return nullptr;
	SpaceBacklogEntry *table = entries();
	std::uint32_t i = home(space_id, h->capacity);
	while (table[i].occupied)
		i = (i + 1) & (h->capacity - 1);
	table[i] = SpaceBacklogEntry{1, space_id, dim, h->census, 0, 0};
	h->occupied++;
	return &table[i];
}

void
SpaceBacklog::drop_if_idle(SpaceBacklogEntry *e) noexcept
{
	if (active(*e))
		return;
	SpaceBacklogHeader *h = header();
	SpaceBacklogEntry *table = entries();
	const std::uint32_t mask = h->capacity - 1;
	// Backward-shift deletion: later entries of the probe run move into the
	// gap unless their home lies after it, so no tombstones are needed.
	auto gap = static_cast<std::uint32_t>(e - table);
	table[gap].occupied = 0;
	h->occupied--;
	for (std::uint32_t j = (gap + 1) & mask; table[j].occupied; j = (j + 1) & mask) {
		const std::uint32_t k = home(table[j].space_id, h->capacity);
		const bool stays = gap <= j ? (gap < k && k <= j) : (gap < k || k <= j);
		if (stays)
			continue;
		table[gap] = table[j];
		table[j].occupied = 0;
		gap = j;
	}
}

void
SpaceBacklog::change(SpaceBacklogEntry *e, std::int64_t queued_delta, std::int64_t unlinked_delta) noexcept
{
	SpaceBacklogHeader *h = header();
	const bool was_active = active(*e);
	const bool had_unlinked = e->unlinked > 0;
	// Counts never go below zero, whatever a caller reports.
	queued_delta = std::max(queued_delta, -static_cast<std::int64_t>(e->queued));
	unlinked_delta = std::max(unlinked_delta, -static_cast<std::int64_t>(e->unlinked));
	e->queued += static_cast<std::uint64_t>(queued_delta);
	e->unlinked += static_cast<std::uint64_t>(unlinked_delta);
	const std::uint64_t bytes = row_backlog_bytes(e->dim);
	auto move = [](std::atomic<std::uint64_t> &total, std::int64_t delta) {
		total.store(total.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(delta),
					std::memory_order_release);
	};
	move(h->queued_rows, queued_delta);
	move(h->unlinked_rows, unlinked_delta);
	move(h->queued_bytes, queued_delta * static_cast<std::int64_t>(bytes));
	move(h->unlinked_bytes, unlinked_delta * static_cast<std::int64_t>(bytes));
	if (had_unlinked != (e->unlinked > 0))
		h->with_unlinked = had_unlinked ? h->with_unlinked - 1 : h->with_unlinked + 1;
	if (was_active != active(*e)) {
		const std::uint32_t spaces = h->active_spaces.load(std::memory_order_relaxed);
		h->active_spaces.store(was_active ? spaces - 1 : spaces + 1, std::memory_order_release);
	}
}

AdmitVerdict
SpaceBacklog::admit(std::span<const BacklogDemand> demands, PipelineState pipeline, double overloaded) noexcept
{
	SpaceBacklogHeader *h = header();
	lock();
	pipeline.backlog = static_cast<double>(h->queued_bytes.load(std::memory_order_relaxed) +
										   h->unlinked_bytes.load(std::memory_order_relaxed));
	pipeline.active_spaces = h->active_spaces.load(std::memory_order_relaxed);
	AdmitVerdict verdict{AdmitStatus::admitted, 0, 0.0, pipeline};
	for (const BacklogDemand &d : demands) {
		const SpaceBacklogEntry *e = find(d.space_id);
		const double fill = space_fill(pipeline, e != nullptr ? static_cast<double>(entry_bytes(*e)) : 0.0);
		if (fill >= overloaded) {
			unlock();
			return AdmitVerdict{AdmitStatus::over_share, d.space_id, fill, pipeline};
		}
		verdict.space_fill = std::max(verdict.space_fill, fill);
	}
	for (std::size_t i = 0; i < demands.size(); ++i) {
		SpaceBacklogEntry *e = find_or_make(demands[i].space_id, demands[i].dim);
		if (e == nullptr) {
			for (std::size_t k = 0; k < i; ++k) {
				SpaceBacklogEntry *added = find(demands[k].space_id);
				change(added, -static_cast<std::int64_t>(demands[k].rows), 0);
				drop_if_idle(added);
			}
			unlock();
			return AdmitVerdict{AdmitStatus::no_room, demands[i].space_id, 0.0, pipeline};
		}
		change(e, static_cast<std::int64_t>(demands[i].rows), 0);
	}
	unlock();
	return verdict;
}

void
SpaceBacklog::withdraw(std::span<const BacklogDemand> demands) noexcept
{
	lock();
	for (const BacklogDemand &d : demands) {
		if (SpaceBacklogEntry *e = find(d.space_id)) {
			change(e, -static_cast<std::int64_t>(d.rows), 0);
			drop_if_idle(e);
		}
	}
	unlock();
}

void
SpaceBacklog::consumed(std::int32_t space_id, std::uint32_t dim, std::uint64_t rows, std::uint64_t stored) noexcept
{
	lock();
	SpaceBacklogEntry *e = stored > 0 ? find_or_make(space_id, dim) : find(space_id);
	if (e != nullptr) {
		change(e, -static_cast<std::int64_t>(rows), static_cast<std::int64_t>(stored));
		drop_if_idle(e);
	}
	unlock();
}

void
SpaceBacklog::census(std::span<const CensusRow> rows) noexcept
{
	SpaceBacklogHeader *h = header();
	lock();
	const std::uint32_t round = ++h->census;
	std::uint32_t measured = 0; // entries this census gave unlinked rows (rows name distinct spaces)
	for (const CensusRow &row : rows) {
		if (row.unlinked_rows == 0)
			continue;
		SpaceBacklogEntry *e = find_or_make(row.space_id, row.dim);
		if (e == nullptr)
			continue;
		change(e, 0, static_cast<std::int64_t>(row.unlinked_rows) - static_cast<std::int64_t>(e->unlinked));
		e->census = round;
		++measured;
	}
	// The pass below is what leaves entries idle (besides a backend that died
	// between admit() and its record, rare enough to wait for the next pass).
	if (h->with_unlinked == measured) {
		unlock();
		return;
	}
	SpaceBacklogEntry *table = entries();
	for (std::uint32_t i = 0; i < h->capacity; ++i)
		if (table[i].occupied && table[i].census != round && table[i].unlinked > 0)
			change(&table[i], 0, -static_cast<std::int64_t>(table[i].unlinked));
	// A removal may shift a later entry into place i: look at i again.
	for (std::uint32_t i = 0; i < h->capacity; ++i)
		while (table[i].occupied && !active(table[i]))
			drop_if_idle(&table[i]);
	unlock();
}

SpaceLoad
SpaceBacklog::space(std::int32_t space_id) const noexcept
{
	lock();
	const SpaceBacklogEntry *e = find(space_id);
	const SpaceLoad load = e != nullptr ? SpaceLoad{e->queued, e->unlinked, e->dim} : SpaceLoad{0, 0, 0};
	unlock();
	return load;
}

} // namespace engram::core
