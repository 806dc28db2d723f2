// The space directory in shared memory (see directory.hpp).
#include "pg/directory.hpp"

#include <climits>
#include <cstring>
#include <new>

#include "pg/shared.hpp"

#include "pg/postgres.hpp"

namespace {

template <typename T>
T *
at(std::uint64_t offset)
{
	return reinterpret_cast<T *>(reinterpret_cast<std::byte *>(shared_state()) + offset);
}

SpaceDirectory &
directory(void)
{
	return shared_state()->directory;
}

SpaceSlot *
slots(void)
{
	return at<SpaceSlot>(directory().slots_offset);
}

std::int32_t *
free_list(void)
{
	return at<std::int32_t>(directory().free_offset);
}

engram::core::SpaceTable
table(void)
{
	return engram::core::SpaceTable(std::span<engram::core::SpaceTableBucket>(
		at<engram::core::SpaceTableBucket>(directory().buckets_offset), directory().bucket_count));
}

std::size_t
aligned(std::size_t n)
{
	return (n + 63) & ~std::size_t{63};
}

DropOutcome
outcome_of(TransactionId xid)
{
	if (xid == InvalidTransactionId)
		return DropOutcome::none;
	if (TransactionIdIsInProgress(xid))
		return DropOutcome::in_progress;
	return TransactionIdDidCommit(xid) ? DropOutcome::committed : DropOutcome::aborted;
}

} // namespace

std::size_t
directory_bytes(std::uint32_t capacity)
{
	return aligned(sizeof(SpaceSlot) * capacity) + aligned(sizeof(engram::core::IndexSlot) * capacity) +
		   aligned(sizeof(engram::core::SpaceTableBucket) * engram::core::SpaceTable::buckets_for(capacity)) +
		   aligned(sizeof(std::int32_t) * capacity) + aligned(sizeof(std::atomic<std::uint32_t>) * capacity);
}

void
directory_create(SpaceDirectory &d, std::byte *base, std::uint64_t offset, std::uint32_t capacity)
{
	d.capacity = capacity;
	d.bucket_count = static_cast<std::uint32_t>(engram::core::SpaceTable::buckets_for(capacity));
	d.in_use.store(0, std::memory_order_relaxed);
	d.homeless_from.store(INT32_MAX, std::memory_order_relaxed);
	d.slots_offset = offset;
	d.indexes_offset = d.slots_offset + aligned(sizeof(SpaceSlot) * capacity);
	d.buckets_offset = d.indexes_offset + aligned(sizeof(engram::core::IndexSlot) * capacity);
	d.free_offset = d.buckets_offset + aligned(sizeof(engram::core::SpaceTableBucket) * d.bucket_count);
	d.duties_offset = d.free_offset + aligned(sizeof(std::int32_t) * capacity);
	auto *slot_array = reinterpret_cast<SpaceSlot *>(base + d.slots_offset);
	auto *index_array = reinterpret_cast<engram::core::IndexSlot *>(base + d.indexes_offset);
	auto *duty_array = reinterpret_cast<std::atomic<std::uint32_t> *>(base + d.duties_offset);
	for (std::uint32_t i = 0; i < capacity; ++i) {
		new (&slot_array[i]) SpaceSlot{};
		new (&index_array[i]) engram::core::IndexSlot{};
		new (&duty_array[i]) std::atomic<std::uint32_t>(0);
	}
	engram::core::SpaceTable::clear(std::span<engram::core::SpaceTableBucket>(
		reinterpret_cast<engram::core::SpaceTableBucket *>(base + d.buckets_offset), d.bucket_count));
	// A stack whose top is slot 0: the lowest free slot is handed out first.
	auto *stack = reinterpret_cast<std::int32_t *>(base + d.free_offset);
	for (std::uint32_t i = 0; i < capacity; ++i)
		stack[i] = static_cast<std::int32_t>(capacity - 1 - i);
	d.free_count = capacity;
}

std::span<SpaceSlot>
directory_slots(void)
{
	return std::span<SpaceSlot>(slots(), directory().in_use.load(std::memory_order_acquire));
}

std::span<engram::core::IndexSlot>
directory_indexes(void)
{
	return std::span<engram::core::IndexSlot>(at<engram::core::IndexSlot>(directory().indexes_offset),
											  directory().capacity);
}

const std::atomic<std::uint32_t> &
directory_in_use(void)
{
	return directory().in_use;
}

std::uint32_t
directory_capacity(void)
{
	return directory().capacity;
}

std::uint32_t
directory_taken(void)
{
	return directory().capacity - directory().free_count;
}

std::span<std::atomic<std::uint32_t>>
directory_duties(void)
{
	return std::span<std::atomic<std::uint32_t>>(at<std::atomic<std::uint32_t>>(directory().duties_offset),
												 directory().capacity);
}

void
directory_owe(const SpaceSlot *slot, SlotDuty duty)
{
	directory_duties()[static_cast<std::size_t>(slot - slots())].fetch_or(duty);
}

SpaceSlot *
directory_find(std::int32_t space_id)
{
	const std::int32_t value = table().find(space_id);
	return value == 0 ? nullptr : &slots()[value - 1];
}

bool
directory_homeless(std::int32_t space_id)
{
	return space_id >= directory().homeless_from.load(std::memory_order_acquire) && directory_find(space_id) == nullptr;
}

SpaceSlot *
directory_install(const SpaceDefinition &definition, std::uint32_t create_xid)
{
	if (SpaceSlot *existing = directory_find(definition.space_id))
		return existing;
	SpaceDirectory &d = directory();
	if (d.free_count == 0)
		return nullptr;
	const std::int32_t index = free_list()[d.free_count - 1];
	if (!table().insert(definition.space_id, index + 1))
		return nullptr;
	d.free_count--;
	SpaceSlot &slot = slots()[index];
	engram::core::reset(directory_index(&slot));
	slot.space_id = definition.space_id;
	slot.dim = definition.dim;
	slot.metric = static_cast<std::uint32_t>(definition.metric);
	slot.m = definition.m;
	slot.ef_construction = definition.ef_construction;
	slot.encoding = static_cast<std::uint32_t>(definition.encoding);
	strlcpy(slot.name, definition.name, sizeof slot.name);
	slot.create_xid.store(create_xid, std::memory_order_relaxed);
	slot.drop_xid.store(InvalidTransactionId, std::memory_order_relaxed);
	slot.rebuild_requested.store(0, std::memory_order_relaxed);
	slot.health.store(SPACE_READY, std::memory_order_relaxed);
	slot.cause = QUARANTINE_NONE;
	slot.cause_text[0] = '\0';
	slot.dropped_observations.store(0, std::memory_order_relaxed);
	// A space created after the load holds no row from before it; the loader
	// sets the gap of the spaces it loads.
	directory_set_snapshot_gap(&slot, 0, shared_state()->loaded_generation.load(std::memory_order_acquire));
	slot.read_back_until.store(0, std::memory_order_relaxed);
	directory_forget_file(&slot);
	slot.forgotten_since.store(0, std::memory_order_relaxed);
	slot.file.revisions_in_flight.store(0, std::memory_order_relaxed);
	slot.file.revision_generation.store(0, std::memory_order_relaxed);
	slot.state.store(SPACE_SLOT_LIVE, std::memory_order_release);
	// After the state: a walk that finds the slot free may clear the bit.
	if (create_xid != InvalidTransactionId)
		directory_owe(&slot, DUTY_RESOLVE);
	if (static_cast<std::uint32_t>(index) >= d.in_use.load(std::memory_order_relaxed))
		d.in_use.store(static_cast<std::uint32_t>(index) + 1, std::memory_order_release);
	return &slot;
}

void
directory_mark_homeless(std::int32_t space_id)
{
	std::atomic<std::int32_t> &from = directory().homeless_from;
	if (space_id < from.load(std::memory_order_relaxed))
		from.store(space_id, std::memory_order_release);
}

void
directory_forget_homeless(void)
{
	directory().homeless_from.store(INT32_MAX, std::memory_order_release);
}

engram::core::IndexSlot &
directory_index(const SpaceSlot *slot)
{
	return directory_indexes()[static_cast<std::size_t>(slot - slots())];
}

engram::core::HnswConfig
directory_config(const SpaceSlot *slot)
{
	engram::core::HnswConfig config;
	config.dim = slot->dim;
	config.metric = static_cast<engram::core::Metric>(slot->metric);
	config.m = slot->m;
	config.ef_construction = slot->ef_construction;
	config.encoding = static_cast<engram::core::Encoding>(slot->encoding);
	config.seed = static_cast<std::uint64_t>(slot->space_id);
	// 16 nodes in each array's first chunk: a space of a few rows (one of
	// many tenants) costs a few kilobytes, not the 300 KB of 1,024-node
	// chunks; chunks double from there, so a large space makes only six
	// allocations more.
	config.first_chunk_log2 = 4;
	return config;
}

engram::core::HnswGraph
pinned_graph(const engram::core::GraphPin &pin)
{
	return engram::core::HnswGraph(shared_arena(), pin.offset());
}

void
directory_destroy_graph(engram::core::IndexSlot &index, unsigned which)
{
	const std::uint64_t offset = engram::core::retire(index, which);
	if (offset == 0)
		return;
	// Pins are held for one search or a few links, never across a wait.
	while (!engram::core::drained(index, which))
		pg_usleep(100);
	engram::core::HnswGraph(shared_arena(), offset).destroy();
}

void
directory_free(SpaceSlot *slot)
{
	engram::core::IndexSlot &index = directory_index(slot);
	directory_destroy_graph(index, 0);
	directory_destroy_graph(index, 1);
	LWLockAcquire(shared_directory_lock(), LW_EXCLUSIVE);
	SpaceDirectory &d = directory();
	(void) table().erase(slot->space_id);
	free_list()[d.free_count++] = static_cast<std::int32_t>(slot - slots());
	slot->state.store(SPACE_SLOT_FREE, std::memory_order_release);
	LWLockRelease(shared_directory_lock());
}

void
directory_forget_file(SpaceSlot *slot)
{
	SpaceFileState &f = slot->file;
	for (std::atomic<std::uint64_t> *field :
		 {&f.observations, &f.linked, &f.forgotten, &f.graph, &f.generation, &f.bytes})
		field->store(0, std::memory_order_relaxed);
	f.erase_written.store(f.erase_requested.load(std::memory_order_relaxed), std::memory_order_relaxed);
	f.written_at.store(0, std::memory_order_relaxed);
	f.attempted_at.store(0, std::memory_order_relaxed);
}

void
directory_set_snapshot_gap(SpaceSlot *slot, std::uint64_t from, std::uint64_t to)
{
	slot->snapshot_gap_from.store(from, std::memory_order_relaxed);
	slot->snapshot_gap_to.store(to, std::memory_order_release);
}

void
directory_widen_snapshot_gap(SpaceSlot *slot, std::uint64_t from, std::uint64_t to)
{
	if (to <= from)
		return;
	const std::uint64_t old_from = slot->snapshot_gap_from.load(std::memory_order_acquire);
	const std::uint64_t old_to = slot->snapshot_gap_to.load(std::memory_order_acquire);
	if (old_to <= old_from)
		directory_set_snapshot_gap(slot, from, to);
	else
		directory_set_snapshot_gap(slot, std::min(old_from, from), std::max(old_to, to));
}

DropOutcome
directory_drop_outcome(const SpaceSlot *slot)
{
	return outcome_of(slot->drop_xid.load(std::memory_order_acquire));
}

DropOutcome
directory_create_outcome(const SpaceSlot *slot)
{
	return outcome_of(slot->create_xid.load(std::memory_order_acquire));
}

bool
directory_frees_pending(void)
{
	bool pending = false;
	directory_each_owing(DUTY_RESOLVE, [&pending](const SpaceSlot &slot) {
		pending = pending || (slot.state.load(std::memory_order_acquire) == SPACE_SLOT_LIVE &&
							  (directory_drop_outcome(&slot) == DropOutcome::committed ||
							   directory_create_outcome(&slot) == DropOutcome::aborted));
	});
	return pending;
}
