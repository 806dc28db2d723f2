// Linking a stored node into the graph, safely alongside other links and
// searches.
//
// link(id): claim the node (one fetch_or, so a node is linked at most once),
// descend greedily from the entry point to the node's level, then on each
// level from there down to 0: beam-search ef_construction candidates, choose
// neighbours with the heuristic, merge them into the node's own list and add
// the node to each chosen neighbour's list (connect).
//
// connect() is optimistic: it copies the list with read_list(), computes the
// new list with no lock held (appending when there is room, otherwise
// re-running the heuristic over old ids plus new ones, skipping the pairs of
// ids it compared at the list's previous pruning), then locks the list
// only if its word is still the one it read, stores the ids and unlocks. If
// another writer got there first the CAS fails and connect starts over from a
// fresh copy. Merging also covers the node's own list: a concurrent link may
// already have added itself to it after finding the node one level up.
//
// Reachability. Pruning alone can drop a node from every list that points to
// it (hnswlib graphs routinely lose a few nodes that way). engram keeps a
// spanning tree on level 0 instead: each node adopts a parent among its
// neighbours whose own parent is already set (so parents form chains that end
// at the root, the first node linked, and never cycles), and the edges
// parent -> child and child -> parent are pinned: pruning keeps them. A parent
// takes at most m children, so at most m + 1 of a list's 2m slots are ever
// pinned. Every node therefore reaches the root through parent edges and the
// root reaches every node through child edges: all of level 0 is reachable
// from the entry point, whatever the data and the interleaving of threads.
//
// The top level: an insert whose level exceeds the current max level (or the
// very first insert) takes the graph's top_lock, re-reads the entry word, and
// holds the lock for its whole link so that two such inserts cannot both
// become the entry; it publishes itself as the entry with a release store
// once all its lists are in place. All other inserts never touch the lock.
//
// linked_prefix advances past every run of finished nodes (CAS), so
// snapshot_search knows which ids may still be missing from the graph.
//
// Failure. A link can throw half-way (std::bad_alloc as its context grows).
// The top lock is held through a guard, so it is released; list locks are
// never held across anything that can throw. The node is then given back:
// its claim flag is cleared and the graph's link cursor rewound to it, so
// claim_unlinked() hands it out again and linked_prefix, stuck before it,
// moves on once a retry finishes. Whatever the failed attempt already wrote
// is kept and is correct as far as it goes: lists that name the node (a
// search passes through it; descents skip it until it is linked), part of
// its own lists (the retry's connect merges into them), and its tree parent,
// which the retry keeps (the parent counted it as a child, and other nodes
// may have adopted it since).
#include <algorithm>

#include "core/fault_injection.hpp"
#include "core/hnsw_context.hpp"
#include "core/hnsw_graph.hpp"

namespace engram::core {

namespace {

// How much nearer to a kept neighbour than to the base node a candidate may
// be and still count as a new direction, when a new node picks its own
// neighbours. 1 is the classic HNSW heuristic; a little above 1 keeps more
// long links, which raised recall@10 at ef 64 by about 0.02 on sift5k and
// 0.01 on glove100. Pruning an overfull list uses a smaller factor: a larger
// one keeps lists fuller, so they overflow more often (1.1 doubled the
// distance computations of a build). 1.05 rather than the classic 1 raised
// recall@10 at ef 64 by about 0.005 on both glove100 and sift5k (mean over
// level seeds) for 10-13% more distance computations in a build.
constexpr float k_own_diversity = 1.1f;
constexpr float k_prune_diversity = 1.05f;

} // namespace

// Level-0 list sizes; for m = 16, with m0 = 32 slots per list. A new node
// keeps m + m/4 (20) neighbours on level 0 instead of m, and so also gets back
// links from more nodes: that raised recall@10 at ef 64 on glove100 from 0.904
// to 0.915 and on sift5k by 0.006. A pruned level-0 list keeps at most
// m0 - m/4 (28) ids and the heuristic stops there, so a list takes a few back
// links before it overflows again: against pruning to m0, that saved 17% of
// the distance computations of a glove100 build for 0.0015 of recall.
// Filling pruned lists up with the nearest rejected candidates, as new nodes
// do, raised glove100 about as much but lowered sift5k by up to 0.006, and
// lists were pruned three to six times as often. Neighbour lists of 32 ids
// cannot take glove100 to 0.95 at ef 64: graphs built offline from almost
// exact neighbour lists reach about 0.93 (docs/benchmarks.md).
std::uint32_t
HnswGraph::own_capacity(std::uint32_t level, std::uint32_t m) noexcept
{
	return level == 0 ? m + m / 4 : m;
}

std::uint32_t
HnswGraph::pruned_capacity(std::uint32_t level, std::uint32_t m, std::uint32_t m0) noexcept
{
	return level == 0 ? m0 - m / 4 : m;
}

void
HnswGraph::select_neighbors(std::span<const Neighbor> candidates, std::uint32_t capacity, Selection selection,
							std::uint32_t pin_owner, std::vector<Neighbor> &kept, SearchContext &context) const
{
	// The heuristic: walk candidates nearest first and keep one only if it is
	// not (much) nearer to a neighbour kept so far than to the base node, so
	// links spread in different directions instead of clustering and long
	// links survive. A copy of a kept node (distance 0) is never diverse, so
	// of many copies of one point a list keeps one and still reaches other
	// points; a copy of the base node itself hides nothing, since any point is
	// as far from it as from the base. Tree edges of pin_owner (if any) are
	// kept before everything else. For a new node, rejected candidates then
	// take its free slots, nearest first, so its list starts full: that is
	// what makes the graph dense enough for high recall at a small ef.
	//
	// Pruning a list: candidates are its ids, some marked k_list_checked
	// because they passed this heuristic at the list's previous pruning. Two
	// marked ids were compared then (the nearer one was kept when the farther
	// one was examined) and distances do not change, so a marked candidate is
	// compared only with kept ids that are not marked; the result is the same
	// as comparing all pairs, for a third to a half fewer comparisons on
	// glove100 and sift5k. The ids that pass are marked again; pins are not
	// (they passed nothing).
	const bool new_node = selection == Selection::new_node;
	const float diversity = new_node ? k_own_diversity : k_prune_diversity;
	kept.clear();
	if (candidates.size() <= capacity) {
		kept.assign(candidates.begin(), candidates.end());
		return;
	}
	std::vector<Neighbor> &discarded = context.discarded_;
	discarded.clear();
	std::size_t pins = 0;
	if (pin_owner != k_no_node) {
		const std::uint32_t owner_parent = head(pin_owner).parent.load(std::memory_order_acquire);
		for (const Neighbor &c : candidates) {
			const std::uint32_t id = c.id & ~k_list_checked;
			if (id == owner_parent || head(id).parent.load(std::memory_order_acquire) == pin_owner)
				kept.push_back({c.distance, id});
		}
		pins = kept.size();
	}
	const auto is_pin = [&](std::uint32_t id) {
		return std::any_of(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(pins),
						   [id](const Neighbor &k) { return k.id == id; });
	};
	for (const Neighbor &c : candidates) {
		if (kept.size() >= capacity)
			break;
		const std::uint32_t id = c.id & ~k_list_checked;
		const bool checked = (c.id & k_list_checked) != 0;
		if (pins != 0 && is_pin(id))
			continue;
		const Probe v = probe_of(id, context.scratch_.data());
		bool diverse = true;
		for (const Neighbor &k : kept) {
			if (checked && (k.id & k_list_checked) != 0)
				continue;
			const float d = distance(v, k.id & ~k_list_checked);
			if (d == 0.0f || diversity * d < c.distance) {
				diverse = false;
				break;
			}
		}
		if (diverse)
			kept.push_back(c); // keeps its mark until every candidate is examined
		else if (new_node)
			discarded.push_back(c);
	}
	if (new_node) {
		for (std::size_t i = 0; kept.size() < capacity && i < discarded.size(); ++i)
			kept.push_back(discarded[i]);
	} else {
		for (std::size_t i = pins; i < kept.size(); ++i)
			kept[i].id |= k_list_checked;
	}
	// A list has room for every tree edge (at most m + 1, fewer than a pruned
	// list keeps); this only guards the list bound should a tree node ever
	// exceed m children.
	if (kept.size() > capacity)
		kept.resize(capacity);
}

void
HnswGraph::connect(std::uint32_t id, std::uint32_t level, std::span<const std::uint32_t> added, SearchContext &context)
{
	const std::uint32_t capacity = level == 0 ? header_->m0 : header_->m;
	const ListRef target = list(id, level);
	std::uint32_t *links = context.links_.data();
	std::vector<std::uint32_t> &merged = context.merged_;
	for (;;) {
		const std::uint32_t seen = read_list(target, links, true);
		const std::uint32_t n = list_count(seen);
		merged.assign(links, links + n);
		for (const std::uint32_t a : added)
			if (a != id &&
				std::none_of(merged.begin(), merged.end(), [a](std::uint32_t x) { return (x & ~k_list_checked) == a; }))
				merged.push_back(a);
		if (merged.size() == n)
			return;
		std::uint32_t from = n;
		if (merged.size() > capacity) {
			const Probe v = probe_of(id, context.node_vector_.data());
			std::vector<Neighbor> &pruning = context.pruning_;
			pruning.clear();
			for (const std::uint32_t x : merged)
				pruning.push_back({distance(v, x & ~k_list_checked), x});
			std::sort(pruning.begin(), pruning.end());
			select_neighbors(pruning, pruned_capacity(level, header_->m, header_->m0), Selection::overfull_list,
							 level == 0 ? id : k_no_node, context.kept_, context);
			merged.clear();
			for (const Neighbor &k : context.kept_)
				merged.push_back(k.id);
			from = 0;
		}
		if (!try_lock_list(target, seen))
			continue;
		write_list_and_unlock(target, seen, merged.data(), from, static_cast<std::uint32_t>(merged.size()));
		return;
	}
}

bool
HnswGraph::try_adopt(std::uint32_t parent) noexcept
{
	NodeHead &node = head(parent);
	if (node.parent.load(std::memory_order_acquire) == k_no_node)
		return false; // still linking: adopting it could close a cycle
	std::uint8_t children = node.children.load(std::memory_order_relaxed);
	while (children < header_->m)
		if (node.children.compare_exchange_weak(children, children + 1, std::memory_order_acq_rel))
			return true;
	return false;
}

std::uint32_t
HnswGraph::adopt_parent(std::span<const Neighbor> candidates, SearchContext &context)
{
	// The nearest candidate that can take a child.
	for (const Neighbor &c : candidates)
		if (try_adopt(c.id))
			return c.id;
	// Every candidate is full or still linking. Walk the tree down from the
	// root: it always has leaves, and a leaf has room for a child. Tree edges
	// are never pruned, so the walk finds them in the lists, and since each
	// node has one parent it never meets a node twice.
	std::vector<std::uint32_t> &queue = context.merged_;
	queue.assign(1, header_->root);
	std::uint32_t *links = context.links_.data();
	for (std::size_t next = 0; next < queue.size(); ++next) {
		const std::uint32_t x = queue[next];
		if (try_adopt(x))
			return x;
		const std::uint32_t n = list_count(read_list(list(x, 0), links));
		for (std::uint32_t i = 0; i < n; ++i)
			if (links[i] != x && head(links[i]).parent.load(std::memory_order_acquire) == x)
				queue.push_back(links[i]);
	}
	return header_->root;
}

void
HnswGraph::mark_linked(std::uint32_t id) noexcept
{
	head(id).flags.fetch_or(k_node_linked, std::memory_order_release);
	header_->linked.fetch_add(1, std::memory_order_release);
	std::uint64_t prefix = header_->linked_prefix.load(std::memory_order_acquire);
	const std::uint64_t limit = size();
	while (prefix < limit &&
		   (head(static_cast<std::uint32_t>(prefix)).flags.load(std::memory_order_acquire) & k_node_linked) != 0) {
		if (header_->linked_prefix.compare_exchange_weak(prefix, prefix + 1, std::memory_order_acq_rel))
			++prefix;
	}
}

void
HnswGraph::give_back(std::uint32_t id) noexcept
{
	head(id).flags.fetch_and(static_cast<std::uint8_t>(~k_node_claimed), std::memory_order_release);
	// Rewinding the cursor hands the id (and any later one) out again; ids
	// already claimed meanwhile are skipped by link()'s claim.
	std::uint64_t cursor = header_->link_cursor.load(std::memory_order_relaxed);
	while (cursor > id && !header_->link_cursor.compare_exchange_weak(cursor, id, std::memory_order_acq_rel))
		;
	header_->failed_links.fetch_add(1, std::memory_order_relaxed);
}

bool
HnswGraph::link(std::uint32_t id, SearchContext &context)
{
	if (id >= size())
		return false;
	NodeHead &node = head(id);
	if ((node.flags.fetch_or(k_node_claimed, std::memory_order_acq_rel) & k_node_claimed) != 0)
		return false;
	try {
		link_claimed(id, context);
	} catch (...) {
		give_back(id);
		throw;
	}
	return true;
}

void
HnswGraph::link_claimed(std::uint32_t id, SearchContext &context)
{
	NodeHead &node = head(id);
	context.fit(*this);
	const Probe v = probe_of(id, context.query_.data());
	const std::uint32_t level = node.level;

	std::uint64_t entry = header_->entry.load(std::memory_order_acquire);
	SpinLockGuard top_lock;
	if (entry == k_no_entry || level > entry_level(entry)) {
		top_lock.acquire(header_->top_lock);
		entry = header_->entry.load(std::memory_order_acquire);
		if (entry == k_no_entry) {
			header_->root = id;
			node.parent.store(id, std::memory_order_release);
			header_->entry.store(pack_entry(id, level), std::memory_order_release);
			top_lock.unlock();
			mark_linked(id);
			return;
		}
		if (level <= entry_level(entry))
			top_lock.unlock();
	}

	const std::uint64_t limit = size();
	const std::uint32_t top = entry_level(entry);
	SearchStats stats;
	std::uint32_t current = entry_id(entry);
	float current_distance = distance(v, current);
	if (top > level)
		greedy_descend(v, current, current_distance, top, level, limit, context, stats);

	std::uint32_t chosen[256];
	for (std::uint32_t l = std::min(level, top) + 1; l-- > 0;) {
		context.visited_.begin(limit);
		context.visited_.insert(id);
		beam_search(v, current, current_distance, l, header_->ef_construction, limit, nullptr, context, stats);
		const std::vector<Neighbor> &found = context.results_;
		// The next level starts from the nearest node whose link has finished
		// (see greedy_descend: an unfinished one may have empty lower lists).
		const auto start = std::find_if(found.begin(), found.end(), [&](const Neighbor &n) { return is_linked(n.id); });
		if (start != found.end()) {
			current = start->id;
			current_distance = start->distance;
		}
		select_neighbors(found, own_capacity(l, header_->m), Selection::new_node, k_no_node, context.selected_,
						 context);
		auto count = static_cast<std::uint32_t>(context.selected_.size());
		for (std::uint32_t i = 0; i < count; ++i)
			chosen[i] = context.selected_[i].id;
		if (l == 0) {
			// A link that failed after adopting a parent keeps it on its retry:
			// the parent counted the child, and other nodes may already have
			// adopted this one.
			std::uint32_t parent = node.parent.load(std::memory_order_acquire);
			if (parent == k_no_node) {
				parent = adopt_parent(found, context);
				node.parent.store(parent, std::memory_order_release);
			}
			if (std::find(chosen, chosen + count, parent) == chosen + count)
				chosen[count++] = parent;
		}
		fault::at_link_level(id, l);
		connect(id, l, std::span<const std::uint32_t>(chosen, count), context);
		for (std::uint32_t i = 0; i < count; ++i)
			connect(chosen[i], l, std::span<const std::uint32_t>(&id, 1), context);
	}

	mark_linked(id);
	if (top_lock.held())
		header_->entry.store(pack_entry(id, level), std::memory_order_release);
}

} // namespace engram::core
