// Graph search: greedy descent through the upper levels, then a beam search
// of width ef on level 0, shared by queries and by linking.
//
// Every list is read through read_list() (a seqlock copy, see
// hnsw_layout.hpp), so a search never races with concurrent links.
//
// Descending, a search moves only to nodes whose link has finished. A node
// being linked is added to other nodes' lists level by level, top down, so
// it can be met on an upper level while its own lower lists are still
// empty; a search that continued from there would be stranded with that one
// node. The linked flag is read only for a node nearer than the current one,
// which is rare. A search
// fixes its horizon when it starts: it reads the entry word, then the node
// count `limit`, and ignores ids at or above `limit` met in lists later (they
// were appended after the search began, are invisible to it, and would not
// fit the visited set it sized). Its entry node is always below `limit`,
// because a node's append releases the count before its link can publish it
// as the entry.
//
// A search given SearchParams::interrupt reads it every few expansions and,
// once it is raised, stops and returns HnswStatus::interrupted with no
// neighbours (the exact scan of hnsw_exact.cpp does the same every few
// hundred ids), so a recall over a large unlinked tail can be cancelled.
//
// Level 0 has two searches. filtered_search checks every candidate that
// would enter the results against the snapshot (generation bound, forgotten
// generation, confidence) and keeps invisible nodes only as stepping stones;
// it stops only once it holds ef visible nodes, so a very selective bound
// degrades to a wider walk, never to missing results that are reachable.
// beam_search skips that per-node read and is used when the snapshot covers
// every node below `limit` and hides no forgotten node (nothing is
// forgotten, or only from a generation after the snapshot: the common case
// of a recall at the latest generation) and by linking, which wants every
// node.
//
// Memory access: after copying a list, the loop first filters out visited
// ids and prefetches the vectors of the rest (whole vectors up to 512 bytes:
// on glove100, 100,000 vectors of 400 bytes, that doubled QPS over
// prefetching two lines), then computes their distances, so the loads of one
// expansion overlap; the next candidate's list is prefetched meanwhile.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"

namespace engram::core {

namespace {

constexpr float k_infinity = std::numeric_limits<float>::infinity();

// Expansions between two reads of SearchParams::interrupt: each reads one list
// of up to 2m ids, so a raised flag is seen within a few hundred nodes.
constexpr std::uint64_t k_interrupt_every = 8;

bool
interrupted(const volatile std::sig_atomic_t *interrupt, std::uint64_t expanded) noexcept
{
	return interrupt != nullptr && expanded % k_interrupt_every == 0 && *interrupt != 0;
}

// Heap orders as function objects, so the heap operations inline them.
struct Farther {
	bool operator()(const Neighbor &a, const Neighbor &b) const noexcept { return a.distance > b.distance; }
};

struct Nearer {
	bool operator()(const Neighbor &a, const Neighbor &b) const noexcept { return a.distance < b.distance; }
};

} // namespace

HnswGraph::Predicate
HnswGraph::predicate_of(const SearchParams &params) const noexcept
{
	Predicate predicate{params.max_generation, params.min_confidence, nullptr, 0};
	const AttributeFilter *filter = params.filter;
	if (filter != nullptr &&
		(!filter->tokens.empty() || filter->observed_after != std::numeric_limits<std::int64_t>::min() ||
		 filter->observed_before != std::numeric_limits<std::int64_t>::max())) {
		predicate.filter = filter;
		for (const std::uint64_t token : filter->tokens)
			predicate.bloom |= token_bloom(token);
	}
	return predicate;
}

bool
HnswGraph::matches(std::uint32_t id, const Predicate &predicate) const noexcept
{
	// The bloom first: for a token filter it rejects most nodes from the
	// small attrs element, without reading the node head or its tokens.
	if (predicate.bloom != 0 && (attrs(id).bloom & predicate.bloom) != predicate.bloom)
		return false;
	const NodeHead &node = head(id);
	// k_never_forgotten is also the largest snapshot: a node never forgotten is seen by every snapshot.
	const std::uint64_t forgotten = node.forgotten.load(std::memory_order_relaxed);
	if (node.generation > predicate.max_generation || node.confidence < predicate.min_confidence ||
		(predicate.max_generation >= forgotten && forgotten != k_never_forgotten))
		return false;
	const AttributeFilter *filter = predicate.filter;
	if (filter == nullptr)
		return true;
	if (node.observed_at < filter->observed_after || node.observed_at >= filter->observed_before)
		return false;
	const std::span<const std::uint64_t> held = tokens(id);
	auto at = held.begin();
	for (const std::uint64_t token : filter->tokens) {
		at = std::lower_bound(at, held.end(), token);
		if (at == held.end() || *at != token)
			return false;
		++at;
	}
	return true;
}

float
HnswGraph::source_distance(const float *query, const float *vector) const noexcept
{
	const auto *bytes = reinterpret_cast<const std::byte *>(vector);
	const float d = float32_distance_(query, bytes, header_->dim);
	if (header_->metric != Metric::cosine)
		return d;
	const float squared_norm = 1.0f - float32_distance_(vector, bytes, header_->dim);
	return squared_norm > 0.0f ? 1.0f - (1.0f - d) / std::sqrt(squared_norm) : 1.0f;
}

void
HnswGraph::greedy_descend(const Probe &query, std::uint32_t &current, float &current_distance, std::uint32_t from_level,
						  std::uint32_t to_level, std::uint64_t limit, SearchContext &context,
						  SearchStats &stats) const noexcept
{
	std::uint32_t *links = context.links_.data();
	for (std::uint32_t level = from_level; level > to_level; --level) {
		bool moved = true;
		while (moved) {
			moved = false;
			const std::uint32_t n = list_count(read_list(list(current, level), links));
			++stats.expanded;
			for (std::uint32_t i = 0; i < n; ++i) {
				const std::uint32_t id = links[i];
				if (id >= limit)
					continue;
				const float d = distance(query, id);
				++stats.distances;
				if (d < current_distance && is_linked(id)) {
					current_distance = d;
					current = id;
					moved = true;
				}
			}
		}
	}
}

bool
HnswGraph::beam_search(const Probe &query, std::uint32_t entry, float entry_distance, std::uint32_t level,
					   std::uint32_t ef, std::uint64_t limit, const volatile std::sig_atomic_t *interrupt,
					   SearchContext &context, SearchStats &stats) const
{
	// The beam is one array sorted by distance, at most ef long; an entry's
	// top id bit marks it expanded. The next node to expand is the nearest
	// unexpanded entry, and the search ends when every entry is expanded,
	// which is exactly when a candidate heap would find its nearest candidate
	// farther than the ef-th result. An insertion is a binary search and a
	// short memmove, cheaper than the two heaps it replaces.
	constexpr std::uint32_t expanded = 0x80000000u;
	std::vector<Neighbor> &beam = context.results_;
	VisitedSet &visited = context.visited_;
	std::uint32_t *links = context.links_.data();
	const auto by_distance = [](float d, const Neighbor &n) { return d < n.distance; };
	beam.clear();
	visited.insert(entry);
	beam.push_back({entry_distance, entry});
	const std::byte *vectors[256];
	for (std::size_t next = 0; next < beam.size();) {
		if (interrupted(interrupt, stats.expanded))
			return false;
		const std::uint32_t id = beam[next].id;
		beam[next].id = id | expanded;
		++stats.expanded;
		const std::uint32_t n = list_count(read_list(list(id, level), links));
		std::size_t after = next + 1;
		while (after < beam.size() && (beam[after].id & expanded) != 0)
			++after;
		// The next unexpanded entry is likely expanded next; start loading its list.
		if (after < beam.size())
			__builtin_prefetch(list(beam[after].id, level).word, 0, 3);
		std::uint32_t fresh = 0;
		for (std::uint32_t i = 0; i < n; ++i) {
			const std::uint32_t neighbour = links[i];
			if (neighbour >= limit || !visited.insert(neighbour))
				continue;
			const std::byte *v = vector_bytes(neighbour);
			for (std::uint32_t line = 0; line < prefetch_lines_; ++line)
				__builtin_prefetch(v + 64 * line, 0, 3);
			links[fresh] = neighbour;
			vectors[fresh++] = v;
		}
		std::size_t lowest = after;
		for (std::uint32_t i = 0; i < fresh; ++i) {
			const float d = distance(query, vectors[i]);
			if (beam.size() >= ef && d >= beam.back().distance)
				continue;
			const auto at =
				static_cast<std::size_t>(std::upper_bound(beam.begin(), beam.end(), d, by_distance) - beam.begin());
			if (beam.size() >= ef)
				beam.pop_back();
			beam.insert(beam.begin() + static_cast<std::ptrdiff_t>(at), Neighbor{d, links[i]});
			lowest = std::min(lowest, at);
		}
		stats.distances += fresh;
		next = lowest;
		while (next < beam.size() && (beam[next].id & expanded) != 0)
			++next;
	}
	for (Neighbor &b : beam)
		b.id &= ~expanded;
	return true;
}

bool
HnswGraph::filtered_search(const float *query, std::uint32_t entry, float entry_distance, std::uint32_t ef,
						   std::uint64_t limit, const SearchParams &params, const Predicate &predicate,
						   SearchContext &context, SearchStats &stats) const
{
	// Level 0 under a snapshot or attribute filter: nodes that do not match
	// are candidates (so the walk passes through them) but never results, so
	// candidates and results are two heaps, and the walk ends only once the
	// results hold ef matching nodes and the nearest candidate is farther
	// than all of them. Until then the walk is bounded by nothing, so when
	// fewer than ef nodes match it reaches every node it can (all of level 0
	// is reachable, hnsw_insert.cpp).
	std::vector<Neighbor> &candidates = context.candidates_;
	std::vector<Neighbor> &results = context.results_;
	VisitedSet &visited = context.visited_;
	std::uint32_t *links = context.links_.data();
	const std::uint32_t dim = header_->dim;
	candidates.clear();
	results.clear();
	visited.insert(entry);
	candidates.push_back({entry_distance, entry});
	// bound: the distance a node must beat to matter, infinite until the results hold ef nodes.
	float bound = k_infinity;
	if (matches(entry, predicate)) {
		results.push_back({entry_distance, entry});
		if (results.size() >= ef)
			bound = entry_distance;
	}
	const std::byte *vectors[256];
	while (!candidates.empty()) {
		const Neighbor nearest = candidates.front();
		if (nearest.distance > bound)
			break;
		if (interrupted(params.interrupt, stats.expanded))
			return false;
		std::pop_heap(candidates.begin(), candidates.end(), Farther{});
		candidates.pop_back();
		++stats.expanded;
		if (!candidates.empty())
			__builtin_prefetch(list(candidates.front().id, 0).word, 0, 3);
		const std::uint32_t n = list_count(read_list(list(nearest.id, 0), links));
		std::uint32_t fresh = 0;
		for (std::uint32_t i = 0; i < n; ++i) {
			const std::uint32_t id = links[i];
			if (id >= limit || !visited.insert(id))
				continue;
			const std::byte *v = vector_bytes(id);
			for (std::uint32_t line = 0; line < prefetch_lines_; ++line)
				__builtin_prefetch(v + 64 * line, 0, 3);
			__builtin_prefetch(nodes_.at(id), 0, 3);
			if (predicate.bloom != 0)
				__builtin_prefetch(attrs_.at(id), 0, 3);
			links[fresh] = id;
			vectors[fresh++] = v;
		}
		for (std::uint32_t i = 0; i < fresh; ++i) {
			const float d = distance_(query, vectors[i], dim);
			if (d >= bound)
				continue;
			const std::uint32_t id = links[i];
			candidates.push_back({d, id});
			std::push_heap(candidates.begin(), candidates.end(), Farther{});
			if (!matches(id, predicate))
				continue;
			if (results.size() < ef) {
				results.push_back({d, id});
				std::push_heap(results.begin(), results.end(), Nearer{});
			} else {
				std::pop_heap(results.begin(), results.end(), Nearer{});
				results.back() = {d, id};
				std::push_heap(results.begin(), results.end(), Nearer{});
			}
			if (results.size() >= ef)
				bound = results.front().distance;
		}
		stats.distances += fresh;
	}
	std::sort_heap(results.begin(), results.end(), Nearer{});
	return true;
}

void
HnswGraph::finish_results(const float *query, const SearchParams &params, SearchContext &context) const
{
	std::vector<Neighbor> &results = context.results_;
	if (params.rerank != nullptr && header_->encoding != Encoding::float32) {
		for (Neighbor &r : results)
			r.distance = source_distance(query, params.rerank->vector(params.rerank->self, r.id));
		std::sort(results.begin(), results.end());
	}
	const std::size_t k = std::min<std::size_t>(params.k, results.size());
	if (k > 0) {
		// Equal distances sit in the order the walk found them, which depends
		// on how the graph was linked; ordered by id instead, the same
		// candidates give the same answer after a relink, ties at the k-th
		// distance included.
		const float last = results[k - 1].distance;
		const auto by_distance = [](const Neighbor &n, float d) { return n.distance < d; };
		const auto tied = std::lower_bound(results.begin(), results.end(), last, by_distance);
		const auto after =
			std::upper_bound(tied, results.end(), last, [](float d, const Neighbor &n) { return d < n.distance; });
		if (after - tied > 1)
			std::sort(tied, after);
	}
	context.out_.assign(results.begin(), results.begin() + static_cast<std::ptrdiff_t>(k));
}

SearchResult
HnswGraph::search(std::span<const float> query, const SearchParams &params, SearchContext &context) const
{
	SearchResult result;
	result.status = validate(query);
	context.out_.clear();
	if (result.status != HnswStatus::ok || params.k == 0)
		return result;
	context.fit(*this);
	const float *q = prepare_query(query, context);
	// Entry first, then the count: the entry node is always below the count read after it.
	const std::uint64_t entry = header_->entry.load(std::memory_order_acquire);
	const std::uint64_t limit = size();
	// The forgotten count is acquired before lowest_forgotten is read, so a
	// forget it counts has lowered lowest_forgotten already.
	const bool nothing_forgotten_hidden = header_->forgotten.load(std::memory_order_acquire) == 0 ||
										  params.max_generation <
											  header_->lowest_forgotten.load(std::memory_order_relaxed);
	const Predicate predicate = predicate_of(params);
	const bool everything_visible =
		params.max_generation >= header_->max_generation.load(std::memory_order_acquire) && nothing_forgotten_hidden &&
		!(params.min_confidence > header_->lowest_confidence.load(std::memory_order_acquire)) &&
		predicate.filter == nullptr;
	if (entry == k_no_entry)
		return result;
	std::uint32_t current = entry_id(entry);
	float current_distance = distance(q, current);
	++result.stats.distances;
	greedy_descend(probe_of(q), current, current_distance, entry_level(entry), 0, limit, context, result.stats);
	const std::uint32_t ef = std::max(params.ef, params.k);
	context.visited_.begin(limit);
	const bool finished =
		everything_visible
			? beam_search(probe_of(q), current, current_distance, 0, ef, limit, params.interrupt, context, result.stats)
			: filtered_search(q, current, current_distance, ef, limit, params, predicate, context, result.stats);
	if (!finished) {
		result.status = HnswStatus::interrupted;
		return result;
	}
	finish_results(q, params, context);
	result.neighbors = context.out_;
	return result;
}

} // namespace engram::core
