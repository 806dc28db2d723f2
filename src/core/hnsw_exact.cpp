// Exact search over a range of node ids, with the same snapshot and
// attribute filter and the same distance kernels as the graph search.
//
// Its purpose is the tail of a space: nodes already stored but not yet (or
// not completely) linked, which snapshot_search scans so that recall never
// misses a visible observation because indexing lags behind; and the whole
// graph when a filter matches so few nodes that checking every node is
// cheaper than a graph walk (hnsw_recall.cpp). It is also the brute-force
// reference in tests. The scan reads ids in order (hardware prefetchers
// follow it), rejects most nodes of a token filter from their bloom alone,
// and keeps the best k in a max-heap; it reads no lists, so it takes no part
// in the list protocol; node heads, attributes and vectors below the count
// it acquired are immutable except for the flags and the forgotten word,
// which it reads atomically. It reads SearchParams::interrupt every few hundred ids
// and stops with HnswStatus::interrupted once it is raised.
#include <algorithm>

#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"

namespace engram::core {

namespace {

// Ids scanned between two reads of SearchParams::interrupt.
constexpr std::uint32_t k_interrupt_every = 256;

} // namespace

SearchResult
HnswGraph::exact_search(std::span<const float> query, const SearchParams &params, std::uint32_t from, std::uint32_t to,
						SearchContext &context) const
{
	SearchResult result;
	result.status = validate(query);
	context.out_.clear();
	if (result.status != HnswStatus::ok || params.k == 0)
		return result;
	context.fit(*this);
	const float *q = prepare_query(query, context);
	const auto end = static_cast<std::uint32_t>(std::min<std::uint64_t>(to, size()));
	const bool from_source = params.rerank != nullptr && header_->encoding != Encoding::float32;
	const auto nearer = [](const Neighbor &a, const Neighbor &b) { return a < b; };
	std::vector<Neighbor> &best = context.results_;
	best.clear();
	const Predicate predicate = predicate_of(params);
	for (std::uint32_t id = from; id < end; ++id) {
		if (params.interrupt != nullptr && id % k_interrupt_every == 0 && *params.interrupt != 0) {
			result.status = HnswStatus::interrupted;
			return result;
		}
		if (!matches(id, predicate))
			continue;
		const float d = from_source ? source_distance(q, params.rerank->vector(params.rerank->self, id))
									: distance(q, id);
		++result.stats.distances;
		const Neighbor candidate{d, id};
		if (best.size() < params.k) {
			best.push_back(candidate);
			std::push_heap(best.begin(), best.end(), nearer);
		} else if (candidate < best.front()) {
			std::pop_heap(best.begin(), best.end(), nearer);
			best.back() = candidate;
			std::push_heap(best.begin(), best.end(), nearer);
		}
	}
	std::sort(best.begin(), best.end());
	context.out_.assign(best.begin(), best.end());
	result.neighbors = context.out_;
	return result;
}

} // namespace engram::core
