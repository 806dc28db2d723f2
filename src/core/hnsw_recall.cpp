// snapshot_search: what a recall runs. Every stored node that its snapshot
// sees and its filter accepts is a candidate, linked or not, and it returns
// min(k, number of candidates) of them.
//
// Unfiltered, it is the graph search over linked nodes merged with an exact
// scan of the tail that is not linked yet (the prefix is read before the
// graph search starts, so every node the graph search could miss for not
// being linked yet is at or above it and inside the exact range).
//
// Filtered (tokens or a time window), it first estimates how many nodes
// match from a sample spread evenly over the ids, then takes the cheaper of
// two ways, counting costs in units of one matching node of the exact scan
// (its predicate, its distance and its heap update):
//   exact scan   every node's predicate (from its bloom alone for most nodes
//                of a token filter; k_scan_cost each) plus one unit per
//                matching node: best when few match, and exact.
//   graph search walks through every node but keeps only matching ones
//                (filtered_search), until it holds ef of them. Its candidates
//                are not bounded by ef, only its results, so with a fraction
//                f matching it passes about ef / f nodes: the beam widens by
//                the selectivity by itself. Cost: k_expand_cost · ef / f.
// The constants come from glove100 (100,000 x 100-d, m 16, ef 128, one
// token per filter; hnsw_filter_recall_test.cpp prints the figures): the scan
// took 0.63 ms at 0.1% matching (6.3 ns a node), 3.8 ms at 10% and 8.5 ms
// at 50% (0.16 to 0.31 us a match: sparse matches cost more), and the walk
// 0.5 ms at 50%, 1.9 ms at 10% and 14 ms at 1% (1.1 to 2 us per ef / f).
// With a match as the unit near the crossing, a node costs 0.03 and ef / f
// costs 6, so the walk wins from about 7% matching on a graph of that size,
// and from lower fractions on larger graphs, whose scan costs more.
// Whatever the estimate, a graph search that comes back with fewer than k
// nodes is followed by the exact scan, so the count never falls short; the
// graph search alone already reaches every linked node when fewer than ef
// match, so this is a safety net rather than a second pass.
//
// Scoring ranks by score() (scoring.hpp): the search gathers the
// max(ef, 8k) nearest candidates, so that an older or less confident near
// neighbour can give way to a newer, more confident one a little farther
// off, and returns the k of highest score (Neighbor keeps the distance).
#include <algorithm>

#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"

namespace engram::core {

namespace {

constexpr std::uint64_t k_selectivity_samples = 512;
constexpr double k_scan_cost = 0.03;
constexpr double k_expand_cost = 6.0;

} // namespace

bool
HnswGraph::prefer_exact(const Predicate &predicate, std::uint32_t ef) const noexcept
{
	const std::uint64_t n = size();
	if (n <= 4 * k_selectivity_samples)
		return true; // a scan of a few thousand nodes costs less than the sample
	std::uint64_t hits = 0;
	for (std::uint64_t i = 0; i < k_selectivity_samples; ++i)
		hits += matches(static_cast<std::uint32_t>(i * n / k_selectivity_samples), predicate) ? 1 : 0;
	if (hits == 0)
		return true;
	const double fraction = static_cast<double>(hits) / k_selectivity_samples;
	const double exact_cost = static_cast<double>(n) * (k_scan_cost + fraction);
	const double graph_cost = k_expand_cost * ef / fraction;
	return exact_cost <= graph_cost;
}

SearchResult
HnswGraph::graph_and_tail(std::span<const float> query, const SearchParams &params, SearchContext &context) const
{
	const auto prefix = static_cast<std::uint32_t>(linked_prefix());
	SearchResult graph = search(query, params, context);
	if (graph.status != HnswStatus::ok || params.k == 0)
		return graph;
	context.graph_out_.assign(graph.neighbors.begin(), graph.neighbors.end());
	SearchResult exact = exact_search(query, params, prefix, k_no_node, context);
	if (exact.status != HnswStatus::ok)
		return exact;
	std::vector<Neighbor> &merged = context.results_;
	merged.assign(context.graph_out_.begin(), context.graph_out_.end());
	merged.insert(merged.end(), exact.neighbors.begin(), exact.neighbors.end());
	// A node found by both parts has the same distance in both, so its copies sort next to each other.
	std::sort(merged.begin(), merged.end());
	merged.erase(std::unique(merged.begin(), merged.end()), merged.end());
	const std::size_t k = std::min<std::size_t>(params.k, merged.size());
	context.out_.assign(merged.begin(), merged.begin() + static_cast<std::ptrdiff_t>(k));
	exact.neighbors = context.out_;
	exact.stats.distances += graph.stats.distances;
	exact.stats.expanded += graph.stats.expanded;
	return exact;
}

void
HnswGraph::rank_by_score(const Scoring &scoring, std::uint32_t k, SearchContext &context) const
{
	// Sorted by (−score, position): out_ is nearest first, so equal scores keep distance order.
	std::vector<Neighbor> &order = context.results_;
	order.clear();
	for (std::size_t i = 0; i < context.out_.size(); ++i) {
		const Neighbor &n = context.out_[i];
		order.push_back({-score(header_->metric, n.distance, confidence(n.id), observed_at(n.id), scoring),
						 static_cast<std::uint32_t>(i)});
	}
	std::sort(order.begin(), order.end());
	context.graph_out_.assign(context.out_.begin(), context.out_.end());
	context.out_.clear();
	for (std::size_t i = 0; i < std::min<std::size_t>(k, order.size()); ++i)
		context.out_.push_back(context.graph_out_[order[i].id]);
}

SearchResult
HnswGraph::snapshot_search(std::span<const float> query, const SearchParams &params, SearchContext &context) const
{
	if (params.k == 0)
		return search(query, params, context); // checks the query, returns nothing
	SearchParams wide = params;
	if (params.scoring != nullptr)
		wide.k = static_cast<std::uint32_t>(std::min<std::uint64_t>(
			std::max<std::uint64_t>(params.ef, std::uint64_t{k_score_widening} * params.k), k_max_nodes));
	const Predicate predicate = predicate_of(params);
	SearchResult result;
	SearchStats graph_stats;
	if (predicate.filter == nullptr || !prefer_exact(predicate, std::max(wide.ef, wide.k))) {
		result = graph_and_tail(query, wide, context);
		if (result.status != HnswStatus::ok)
			return result;
		graph_stats = result.stats;
	}
	if (result.neighbors.size() < wide.k) {
		result = exact_search(query, wide, 0, k_no_node, context);
		if (result.status != HnswStatus::ok)
			return result;
		result.stats.distances += graph_stats.distances;
		result.stats.expanded += graph_stats.expanded;
	}
	if (params.scoring != nullptr)
		rank_by_score(*params.scoring, params.k, context);
	result.neighbors = context.out_;
	return result;
}

} // namespace engram::core
