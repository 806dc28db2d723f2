// Parallel batch linking over a tbb::parallel_for. Small grains keep both
// threads busy to the end of a batch (one link costs tens of microseconds, far
// more than a task), and a per-chunk counter keeps the count of linked nodes
// off the shared cache line for most of the loop.
#include "support/hnsw_batch.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

namespace engram::core {

std::uint32_t
link_range(HnswGraph &graph, std::uint32_t from, std::uint32_t to, HnswContextPool &pool,
		   const std::atomic<bool> *cancel)
{
	if (from >= to)
		return 0;
	std::atomic<std::uint32_t> linked{0};
	tbb::parallel_for(tbb::blocked_range<std::uint32_t>(from, to, 4), [&](const tbb::blocked_range<std::uint32_t> &r) {
		SearchContext &context = pool.local();
		std::uint32_t here = 0;
		for (std::uint32_t id = r.begin(); id != r.end(); ++id) {
			if (cancel != nullptr && cancel->load(std::memory_order_relaxed))
				break;
			here += graph.link(id, context) ? 1 : 0;
		}
		linked.fetch_add(here, std::memory_order_relaxed);
	});
	return linked.load(std::memory_order_relaxed);
}

HnswStatus
insert_batch(HnswGraph &graph, std::span<const float> vectors, std::span<const std::uint64_t> generations,
			 HnswContextPool &pool, std::uint32_t *first, const std::atomic<bool> *cancel)
{
	std::uint32_t start = 0;
	const HnswStatus status = graph.append_batch(vectors, generations, start);
	if (status != HnswStatus::ok)
		return status;
	if (first != nullptr)
		*first = start;
	link_range(graph, start, start + static_cast<std::uint32_t>(generations.size()), pool, cancel);
	return HnswStatus::ok;
}

} // namespace engram::core
