// Requesting, initialising and addressing engram's shared memory (see
// shared.hpp). Sizes come only from PGC_POSTMASTER settings, so the layout is
// fixed for the life of the postmaster; a crash restart lays it out afresh,
// and the workers then reload the stores from the table.
#include "pg/shared.hpp"

#include <new>

#include "pg/guc.hpp"
#include "pg/postgres.hpp"

namespace {

constexpr std::uint64_t k_shared_magic = 0x454e4752414d5348ULL; // "ENGRAMSH"
constexpr const char *k_tranche = "engram";

EngramShared *shared = nullptr;

std::size_t
align_up(std::size_t n)
{
	return (n + 4095) & ~std::size_t{4095};
}

std::size_t
ring_bytes(void)
{
	return engram::core::Ring::region_bytes(static_cast<std::size_t>(engram_ring_size_kb) * 1024);
}

std::size_t
arena_bytes(void)
{
	return static_cast<std::size_t>(engram_memory_limit_mb) * 1024 * 1024;
}

std::size_t
backlog_bytes(void)
{
	return engram::core::SpaceBacklog::region_bytes(static_cast<std::uint32_t>(engram_max_spaces));
}

std::size_t
segment_bytes(void)
{
	// Slack so the header and regions can be page-aligned inside the segment.
	return align_up(sizeof(EngramShared)) + align_up(directory_bytes(static_cast<std::uint32_t>(engram_max_spaces))) +
		   align_up(ring_bytes()) + align_up(backlog_bytes()) + arena_bytes() + 2 * 4096;
}

std::byte *
page_aligned(void *p)
{
	return reinterpret_cast<std::byte *>(align_up(reinterpret_cast<std::uintptr_t>(p)));
}

} // namespace

void
shared_request(void)
{
	RequestAddinShmemSpace(segment_bytes());
	RequestNamedLWLockTranche(k_tranche, 1);
}

void
shared_startup(void)
{
	bool found = false;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	void *raw = ShmemInitStruct("engram", segment_bytes(), &found);
	shared = reinterpret_cast<EngramShared *>(page_aligned(raw));
	if (!found) {
		auto *s = new (shared) EngramShared{};
		s->magic = k_shared_magic;
		const std::uint64_t directory_offset = align_up(sizeof(EngramShared));
		s->ring_offset = directory_offset + align_up(directory_bytes(static_cast<std::uint32_t>(engram_max_spaces)));
		s->backlog_offset = s->ring_offset + align_up(ring_bytes());
		s->arena_offset = s->backlog_offset + align_up(backlog_bytes());
		s->arena_bytes = arena_bytes();
		auto *base = reinterpret_cast<std::byte *>(s);
		directory_create(s->directory, base, directory_offset, static_cast<std::uint32_t>(engram_max_spaces));
		engram::core::Ring::create(base + s->ring_offset, static_cast<std::size_t>(engram_ring_size_kb) * 1024);
		engram::core::SpaceBacklog::create(base + s->backlog_offset, static_cast<std::uint32_t>(engram_max_spaces));
		engram::core::Arena::create(base + s->arena_offset, s->arena_bytes);
	}
	LWLockRelease(AddinShmemInitLock);
}

EngramShared *
shared_state(void)
{
	return shared;
}

void
shared_report_not_preloaded(void)
{
	ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					errmsg("engram must be loaded via shared_preload_libraries"),
					errdetail("engram keeps its ring, stores and worker pool in shared memory, "
							  "which can only be set up at server start."),
					errhint("Add engram to shared_preload_libraries in postgresql.conf and restart the server.")));
	pg_unreachable();
}

EngramShared *
shared_require(void)
{
	if (shared == nullptr)
		shared_report_not_preloaded();
	return shared;
}

engram::core::Ring
shared_ring(void)
{
	return engram::core::Ring(reinterpret_cast<std::byte *>(shared) + shared->ring_offset);
}

engram::core::Arena
shared_arena(void)
{
	return engram::core::Arena(reinterpret_cast<std::byte *>(shared) + shared->arena_offset);
}

engram::core::SpaceBacklog
shared_backlog(void)
{
	return engram::core::SpaceBacklog(reinterpret_cast<std::byte *>(shared) + shared->backlog_offset);
}

LWLock *
shared_directory_lock(void)
{
	static LWLock *lock = nullptr;
	if (lock == nullptr)
		lock = &GetNamedLWLockTranche(k_tranche)->lock;
	return lock;
}

void
shared_wake_workers(void)
{
	for (WorkerSlot &w : shared->workers) {
		const int procno = w.pgprocno.load(std::memory_order_acquire);
		if (w.pid.load(std::memory_order_acquire) != 0 && procno >= 0)
			SetLatch(&ProcGlobal->allProcs[procno].procLatch);
	}
}

void
shared_wake_writer(void)
{
	const int procno = shared->writer.pgprocno.load(std::memory_order_acquire);
	if (shared->writer.pid.load(std::memory_order_acquire) != 0 && procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}
