// LinkPool: the threads of one worker process that link stored nodes into
// the spaces' graphs, in the background of the process's main thread.
//
// The main thread stays free for PostgreSQL work (draining the ring, loading,
// answering signals) and calls wake() whenever it may have stored something;
// up to `threads` tasks then run in the pool's own tbb::task_arena. Each task
// walks every space's IndexSlot, pins each graph in turn, claims a few
// unlinked ids (HnswGraph::claim_unlinked, shared by every worker process)
// and links them inside a link turn, until a whole walk finds nothing to
// claim. After its links (or finding none) it settles the graph's commit
// stamps (link_stamps.hpp), so the rows it completed are timed at once. A graph whose links are frozen (its file is being written) refuses
// the turn and is skipped, and counts as having no work, so the tasks end
// rather than spin; the next wake() after the thaw links it again. Because claims
// come from a counter inside the graph, one hot space keeps every thread of
// every worker busy, and spaces never wait for one another: a thread holds a
// pin, never a lock, and only for a few nodes at a time. A link that fails
// (std::bad_alloc while its context grows, say) releases its locks and gives
// its node back to the graph's claim cursor, the walk's pin is dropped as the
// exception leaves it, and the task waits a little before it walks again, so
// the node is linked later and the graph's linked prefix moves on.
//
// The tasks run only core code on shared memory; nothing here calls back
// into the process that owns the pool.
//
// Nobody ever joins the arena (tasks are enqueued, the main thread goes back
// to PostgreSQL), so every task needs a TBB worker thread, and by default TBB
// keeps one fewer worker than the machine has cores: one worker process on
// two cores would link on one thread. The pool therefore raises the
// process's parallelism limit to threads + 1 for as long as it lives.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include "core/arena.hpp"
#include "core/hnsw_context_pool.hpp"
#include "core/index_slot.hpp"
#include "core/latency_histogram.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

class LinkPool {
public:
	// linked_total, if given, is raised by every node this pool links.
	// slots_in_use, if given, bounds the walk to slots[0, *slots_in_use): a
	// directory sized for many spaces is walked only as far as it is used.
	// hints, if given, has a word per slot, and a slot whose word lacks
	// hint_mask is skipped unread: the owner sets the bit after storing
	// nodes and clears it only once they are all linked, so of 100,000
	// spaces a walk reads the few with work, not every slot.
	// linked_latency, if given, takes the rows whose links finish, with the
	// time since their commit stamps (HnswGraph::stamp_stored).
	LinkPool(Arena arena, std::span<IndexSlot> slots, unsigned threads,
			 std::atomic<std::uint64_t> *linked_total = nullptr,
			 const std::atomic<std::uint32_t> *slots_in_use = nullptr,
			 std::span<const std::atomic<std::uint32_t>> hints = {}, std::uint32_t hint_mask = 0,
			 LatencyHistogram *linked_latency = nullptr);
	~LinkPool();
	LinkPool(const LinkPool &) = delete;
	LinkPool &operator=(const LinkPool &) = delete;

	// Starts tasks until `threads` are looking for work. Cheap when they already are.
	void wake();
	// Lets running tasks finish the node they are on, then waits for them.
	void stop() noexcept;
	// While paused, tasks finish the ids they claimed and end, and wake()
	// starts none: stored nodes wait in the graphs' exact tails.
	void set_paused(bool paused) noexcept { paused_.store(paused, std::memory_order_release); }

	unsigned running() const noexcept { return running_.load(std::memory_order_acquire); }
	// How many distinct threads have linked so far.
	std::size_t threads_used() const { return contexts_.threads(); }
	// Links that threw (std::bad_alloc, or anything else). Each gave its node
	// back, which stays in the exact tail until a later walk links it.
	std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }

private:
	void run() noexcept;
	// One walk over every graph; returns how many nodes it linked. A link
	// that throws ends the walk early and sets `failed`.
	std::uint64_t walk(SearchContext &context, bool &failed);
	bool work_left() const noexcept;
	std::span<IndexSlot> used_slots() const noexcept;
	bool hinted(std::size_t slot) const noexcept
	{
		return hints_.empty() || (hints_[slot].load(std::memory_order_acquire) & hint_mask_) != 0;
	}
	bool held_back() const noexcept
	{
		return stopping_.load(std::memory_order_acquire) || paused_.load(std::memory_order_acquire);
	}

	Arena arena_;
	std::span<IndexSlot> slots_;
	unsigned threads_;
	std::atomic<std::uint64_t> *linked_total_;
	const std::atomic<std::uint32_t> *slots_in_use_;
	std::span<const std::atomic<std::uint32_t>> hints_;
	std::uint32_t hint_mask_;
	LatencyHistogram *linked_latency_;
	std::atomic<unsigned> running_{0};
	std::atomic<bool> stopping_{false};
	std::atomic<bool> paused_{false};
	std::atomic<std::uint32_t> rotation_{0};
	std::atomic<std::uint64_t> failures_{0};
	HnswContextPool contexts_;
	tbb::global_control parallelism_;
	tbb::task_arena tasks_;
};

} // namespace engram::core
