#include "core/link_pool.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/hnsw_graph.hpp"

namespace engram::core {

namespace {

// Ids claimed at a time: enough to amortise the pin and the claim, few
// enough that two threads on one small batch still share it.
constexpr std::uint32_t k_claim = 8;

// After a failed link a task waits before it walks again (the node it gave
// back is at once claimable), doubling the wait while walks fail without
// linking anything, so a lasting shortage of memory costs little CPU.
constexpr std::chrono::milliseconds k_first_backoff{1};
constexpr std::chrono::milliseconds k_longest_backoff{200};

} // namespace

LinkPool::LinkPool(Arena arena, std::span<IndexSlot> slots, unsigned threads, std::atomic<std::uint64_t> *linked_total,
				   const std::atomic<std::uint32_t> *slots_in_use, std::span<const std::atomic<std::uint32_t>> hints,
				   std::uint32_t hint_mask, LatencyHistogram *linked_latency)
	: arena_(arena), slots_(slots), threads_(threads == 0 ? 1 : threads), linked_total_(linked_total),
	  slots_in_use_(slots_in_use), hints_(hints), hint_mask_(hint_mask), linked_latency_(linked_latency),
	  parallelism_(tbb::global_control::max_allowed_parallelism, threads_ + 1), tasks_(static_cast<int>(threads_), 0)
{
}

LinkPool::~LinkPool()
{
	stop();
}

void
LinkPool::wake()
{
	if (held_back())
		return;
	unsigned n = running_.load(std::memory_order_acquire);
	while (n < threads_) {
		if (!running_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel))
			continue;
		tasks_.enqueue([this] { run(); });
		n = running_.load(std::memory_order_acquire);
	}
}

void
LinkPool::stop() noexcept
{
	stopping_.store(true, std::memory_order_release);
	while (running_.load(std::memory_order_acquire) != 0)
		std::this_thread::sleep_for(std::chrono::microseconds(200));
}

std::span<IndexSlot>
LinkPool::used_slots() const noexcept
{
	if (slots_in_use_ == nullptr)
		return slots_;
	return slots_.first(std::min<std::size_t>(slots_.size(), slots_in_use_->load(std::memory_order_acquire)));
}

bool
LinkPool::work_left() const noexcept
{
	const std::span<IndexSlot> slots = used_slots();
	for (std::size_t i = 0; i < slots.size(); ++i) {
		if (!hinted(i))
			continue;
		IndexSlot &slot = slots[i];
		for (unsigned which = 0; which < 2; ++which)
			if (slot.graphs[which].load(std::memory_order_relaxed) != 0)
				if (GraphPin pin(slot, which); pin) {
					// A frozen graph waits for the next wake(): looking again
					// now would only spin while its file is written.
					const HnswGraph graph(arena_, pin.offset());
					if (graph.has_unclaimed() && !graph.links_frozen())
						return true;
				}
	}
	return false;
}

std::uint64_t
LinkPool::walk(SearchContext &context, bool &failed)
{
	std::uint64_t linked = 0;
	const std::span<IndexSlot> slots = used_slots();
	const std::size_t n = slots.size();
	if (n == 0)
		return 0;
	const std::size_t start = rotation_.fetch_add(1, std::memory_order_relaxed) % n;
	for (std::size_t i = 0; i < n && !held_back(); ++i) {
		if (!hinted((start + i) % n))
			continue;
		IndexSlot &slot = slots[(start + i) % n];
		for (unsigned which = 0; which < 2; ++which) {
			// A plain read first: most slots are empty, and pinning writes.
			if (slot.graphs[which].load(std::memory_order_relaxed) == 0)
				continue;
			GraphPin pin(slot, which);
			if (!pin)
				continue;
			HnswGraph graph(arena_, pin.offset());
			// The turn covers the claim and its links: a file writer that
			// freezes the graph waits for them, and meanwhile it is skipped.
			const LinkTurn turn(graph);
			if (!turn)
				continue;
			std::uint32_t first = 0;
			const std::uint32_t claimed = graph.claim_unlinked(k_claim, first);
			for (std::uint32_t id = first; id < first + claimed; ++id) {
				try {
					linked += graph.link(id, context) ? 1 : 0;
				} catch (...) {
					// The node, and with it the rest of this claim, went back
					// to the graph; the turn ends and the pin is dropped on
					// the way out.
					failures_.fetch_add(1, std::memory_order_relaxed);
					failed = true;
					graph.settle_link_stamps(linked_latency_);
					return linked;
				}
			}
			graph.settle_link_stamps(linked_latency_);
		}
	}
	return linked;
}

void
LinkPool::run() noexcept
{
	std::chrono::milliseconds backoff{0};
	const auto wait_after_failure = [&](bool progressed) {
		backoff = progressed ? k_first_backoff : std::clamp(backoff * 2, k_first_backoff, k_longest_backoff);
		std::this_thread::sleep_for(backoff);
	};
	for (;;) {
		try {
			SearchContext &context = contexts_.local();
			while (!held_back()) {
				bool failed = false;
				const std::uint64_t linked = walk(context, failed);
				if (linked_total_ != nullptr && linked != 0)
					linked_total_->fetch_add(linked, std::memory_order_relaxed);
				if (failed) {
					wait_after_failure(linked != 0);
					continue;
				}
				backoff = std::chrono::milliseconds{0};
				if (linked == 0)
					break;
			}
		} catch (...) {
			// No context for this thread (std::bad_alloc): nothing was claimed.
			failures_.fetch_add(1, std::memory_order_relaxed);
			wait_after_failure(false);
		}
		running_.fetch_sub(1, std::memory_order_acq_rel);
		// Work stored after the last walk but before the decrement would
		// otherwise wait for the next wake(): look once more.
		if (held_back() || !work_left())
			return;
		unsigned n = running_.load(std::memory_order_acquire);
		if (n >= threads_ || !running_.compare_exchange_strong(n, n + 1, std::memory_order_acq_rel))
			return;
	}
}

} // namespace engram::core
