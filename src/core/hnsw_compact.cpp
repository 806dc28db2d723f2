// Compaction by copy (what and why in hnsw_compact.hpp).
//
// Steps, all on the caller's thread, with the old graph's links frozen:
//   survey   decide once which nodes go (forgotten at or before the horizon)
//            and number the survivors densely, in id order.
//   nodes    append every survivor to the copy as it was stored: encoded
//            vector bytes (copied, not decoded and encoded again), level
//            (levels are a hash of the id only for fresh appends), data and
//            tokens; the append rebuilds the label table, each label naming
//            its newest survivor. Then its link state, its forgotten
//            generation if it has one (later than the horizon) and its tree
//            parent if that survives.
//   lists    copy each list with ids renumbered; repair those that named a
//            removed node (candidates: the surviving ids plus the surviving
//            neighbours of the removed ones on that level, at most
//            ef_construction of the latter, nearest first; chosen as a new
//            node chooses its own list, which keeps the tree edges).
//   tree     give every tree node whose parent was removed a new parent.
//   publish  entry point, root and the counters of the copy; the commit
//            stamps of unlinked rows move to it (link_stamps.hpp).
//
// The spanning tree. In the old graph every tree node reaches the root by
// parent edges, and both edges of each parent-child pair are in the lists
// (pinned against pruning). Removing a node orphans its surviving children;
// each orphan still heads its intact surviving subtree. An orphan is adopted
// by the nearest node of its level-0 list that is rooted (reaches the root
// already) and has fewer than m children, which cannot close a cycle: the
// orphan's own subtree is not rooted yet. Adoption roots the orphan's whole
// subtree, which may give other orphans a rooted neighbour, so orphans that
// found none are tried again; when a round adopts nobody, the first of them
// is adopted by the first rooted node with room in breadth-first order (a
// leaf always has room), as a link's adopt_parent() does. The new edges are
// added to both lists through connect(), whose pruning keeps tree edges. If
// the root itself was removed, the first orphan (linked, if any is) becomes
// the root.
#include "core/hnsw_compact.hpp"

#include <algorithm>
#include <bit>
#include <new>
#include <vector>

#include "core/hnsw_context.hpp"

namespace engram::core {

namespace {

// How often a compaction reports the nodes it has copied (nodes_copied).
constexpr std::uint32_t k_progress_nodes = 4096;

// Whether a node is hidden from every snapshot after the horizon.
bool
forgotten_by(const NodeHead &node, std::uint64_t horizon) noexcept
{
	return node.forgotten.load(std::memory_order_acquire) <= horizon;
}

// Destroys a graph under construction unless it is kept.
class CopyUnderConstruction {
public:
	CopyUnderConstruction(Arena arena, std::uint64_t offset) noexcept : graph_(arena, offset) {}
	CopyUnderConstruction(const CopyUnderConstruction &) = delete;
	CopyUnderConstruction &operator=(const CopyUnderConstruction &) = delete;
	~CopyUnderConstruction()
	{
		if (!kept_)
			graph_.destroy();
	}
	HnswGraph &graph() noexcept { return graph_; }
	void keep() noexcept { kept_ = true; }

private:
	HnswGraph graph_;
	bool kept_ = false;
};

void
store_list(ListRef list, const std::uint32_t *ids, std::uint32_t n) noexcept
{
	for (std::uint32_t i = 0; i < n; ++i)
		list.ids[i].store(ids[i], std::memory_order_relaxed);
	list.word->store(n, std::memory_order_release);
}

} // namespace

class GraphCompaction {
public:
	GraphCompaction(const HnswGraph &from, std::uint64_t horizon, std::atomic<std::uint64_t> *nodes_copied) noexcept
		: from_(from), horizon_(horizon), nodes_copied_(nodes_copied)
	{
	}

	// May throw std::bad_alloc; the copy is destroyed then.
	HnswStatus run(std::uint64_t &header_offset, CompactionStats &stats);

private:
	bool removed(std::uint32_t old_id) const noexcept { return new_id_[old_id] == k_no_node; }
	std::uint32_t renumbered(std::uint32_t stored) const noexcept
	{
		return new_id_[stored & ~k_list_checked] | (stored & k_list_checked);
	}
	HnswConfig configuration() const noexcept;
	void survey();
	HnswStatus reserve(HnswGraph &to) const noexcept;
	HnswStatus copy_nodes(HnswGraph &to);
	void copy_lists(HnswGraph &to, SearchContext &context);
	void repair_list(HnswGraph &to, std::uint32_t old_id, std::uint32_t level, std::span<const std::uint32_t> ids,
					 SearchContext &context);
	void repair_tree(HnswGraph &to, SearchContext &context);
	void root_subtree(const HnswGraph &to, std::uint32_t id);
	std::uint32_t adoptive_parent(const HnswGraph &to, std::uint32_t orphan);
	std::uint64_t choose_entry(const HnswGraph &to) const noexcept;
	void publish(HnswGraph &to);
	void report_copied(std::uint64_t nodes) noexcept
	{
		if (nodes_copied_ != nullptr)
			nodes_copied_->store(nodes, std::memory_order_relaxed);
	}

	const HnswGraph &from_;
	std::uint64_t horizon_;
	std::atomic<std::uint64_t> *nodes_copied_;
	std::uint64_t count_ = 0;            // old nodes surveyed
	std::vector<std::uint32_t> new_id_;  // per old id; k_no_node if removed
	std::vector<std::uint32_t> old_id_;  // per new id
	std::uint64_t upper_needed_ = 0;     // upper blocks of the survivors
	std::uint64_t tokens_needed_ = 0;    // attribute tokens of the survivors
	std::uint64_t linked_ = 0;           // linked survivors
	std::uint32_t root_ = k_no_node;     // new id of the tree's root
	std::vector<std::uint32_t> orphans_; // new ids of tree nodes whose parent was removed
	CompactionStats stats_;

	// repair_list: stamp_[old id] == epoch_ once it is a candidate of the list being repaired
	std::vector<std::uint32_t> stamp_;
	std::uint32_t epoch_ = 0;
	std::vector<Neighbor> candidates_;
	std::vector<Neighbor> extras_;
	std::vector<Neighbor> kept_;
	std::vector<std::uint32_t> hop_;
	std::vector<std::uint32_t> out_;
	std::vector<float> vector_;

	// repair_tree: children by parent (new ids), rooted nodes in breadth-first order
	std::vector<std::uint32_t> child_start_;
	std::vector<std::uint32_t> children_;
	std::vector<std::uint8_t> rooted_;
	std::vector<std::uint32_t> rooted_order_;
	std::size_t roomy_ = 0; // rooted_order_ before it holds no node with room for a child
};

HnswConfig
GraphCompaction::configuration() const noexcept
{
	const HnswHeader &h = *from_.header_;
	HnswConfig config;
	config.dim = h.dim;
	config.metric = h.metric;
	config.encoding = h.encoding;
	config.m = h.m;
	config.ef_construction = h.ef_construction;
	config.seed = h.seed;
	config.first_chunk_log2 = h.nodes.first_chunk_log2;
	// 0 when the cap was chosen from the stride (each array then chooses its own again).
	const auto automatic =
		std::max<std::uint32_t>(h.nodes.first_chunk_log2,
								static_cast<std::uint32_t>(std::bit_width(k_max_chunk_bytes / h.nodes.stride) - 1));
	config.max_chunk_log2 = h.nodes.max_chunk_log2 == automatic ? 0 : h.nodes.max_chunk_log2;
	return config;
}

void
GraphCompaction::survey()
{
	count_ = from_.size();
	new_id_.assign(count_, k_no_node);
	for (std::uint64_t i = 0; i < count_; ++i) {
		const auto id = static_cast<std::uint32_t>(i);
		const NodeHead &node = from_.head(id);
		if (forgotten_by(node, horizon_))
			continue;
		new_id_[id] = static_cast<std::uint32_t>(old_id_.size());
		old_id_.push_back(id);
		upper_needed_ += node.level;
		tokens_needed_ += from_.attrs(id).count;
		if ((node.flags.load(std::memory_order_acquire) & k_node_linked) != 0)
			++linked_;
	}
	stats_.kept = old_id_.size();
	stats_.removed = count_ - old_id_.size();
}

HnswStatus
GraphCompaction::reserve(HnswGraph &to) const noexcept
{
	const std::uint64_t n = old_id_.size();
	if (!to.nodes_.ensure_capacity(n) || !to.vectors_.ensure_capacity(n) || !to.upper_.ensure_capacity(upper_needed_) ||
		!to.attrs_.ensure_capacity(n) || !to.tokens_.ensure_capacity(to.token_slots_needed(0, tokens_needed_)))
		return HnswStatus::out_of_memory;
	const SpinLockGuard append_lock(to.header_->append_lock);
	return to.reserve_labels(n) ? HnswStatus::ok : HnswStatus::out_of_memory;
}

HnswStatus
GraphCompaction::copy_nodes(HnswGraph &to)
{
	const HnswHeader &h = *from_.header_;
	const bool tree = linked_ != 0; // a copy without linked nodes starts a fresh tree
	for (std::uint32_t old : old_id_) {
		const NodeHead &from = from_.head(old);
		const NodeData data{from.generation, from.label, from.confidence, from.observed_at, from_.tokens(old)};
		std::uint32_t id = 0;
		const HnswStatus stored =
			to.append_stored(std::span<const std::byte>(from_.vector_bytes(old), h.vector_bytes), data, from.level, id);
		if (stored != HnswStatus::ok)
			return stored;
		NodeHead &node = to.head(id);
		// Linked nodes stay claimed; the others are handed out to link in the copy.
		if ((from.flags.load(std::memory_order_acquire) & k_node_linked) != 0)
			node.flags.store(k_node_linked | k_node_claimed, std::memory_order_relaxed);
		const std::uint32_t parent = tree ? from.parent.load(std::memory_order_acquire) : k_no_node;
		if (parent == old)
			root_ = id;
		if (parent == old || (parent != k_no_node && !removed(parent)))
			node.parent.store(new_id_[parent], std::memory_order_relaxed);
		else if (parent != k_no_node)
			orphans_.push_back(id);
		const std::uint64_t forgotten = from.forgotten.load(std::memory_order_acquire);
		if (forgotten != k_never_forgotten)
			to.hide(id, forgotten);
	}
	for (std::uint32_t id = 0; id < old_id_.size(); ++id) {
		const std::uint32_t parent = to.head(id).parent.load(std::memory_order_relaxed);
		if (parent != k_no_node && parent != id)
			to.head(parent).children.fetch_add(1, std::memory_order_relaxed);
	}
	return HnswStatus::ok;
}

void
GraphCompaction::copy_lists(HnswGraph &to, SearchContext &context)
{
	const HnswHeader &h = *from_.header_;
	std::vector<std::uint32_t> ids(h.m0);
	out_.resize(h.m0);
	stamp_.assign(count_, 0);
	for (std::uint32_t id = 0; id < old_id_.size(); ++id) {
		if (id % k_progress_nodes == 0)
			report_copied(id);
		const std::uint32_t old = old_id_[id];
		for (std::uint32_t l = 0; l <= from_.head(old).level; ++l) {
			const std::uint32_t n = list_count(read_list(from_.list(old, l), ids.data(), true));
			const std::span<const std::uint32_t> list(ids.data(), n);
			if (std::any_of(list.begin(), list.end(),
							[this](std::uint32_t x) { return removed(x & ~k_list_checked); })) {
				repair_list(to, old, l, list, context);
				++stats_.repaired_lists;
				continue;
			}
			for (std::uint32_t i = 0; i < n; ++i)
				out_[i] = renumbered(ids[i]);
			store_list(to.list(id, l), out_.data(), n);
		}
	}
}

void
GraphCompaction::repair_list(HnswGraph &to, std::uint32_t old_id, std::uint32_t level,
							 std::span<const std::uint32_t> ids, SearchContext &context)
{
	const HnswHeader &h = *from_.header_;
	const std::uint32_t id = new_id_[old_id];
	// Measured as linking measures (code to code in an sq8 graph), since
	// select_neighbors compares these distances with its own.
	const HnswGraph::Probe v = to.probe_of(id, vector_.data());
	if (++epoch_ == 0) {
		std::fill(stamp_.begin(), stamp_.end(), 0);
		epoch_ = 1;
	}
	stamp_[old_id] = epoch_;
	candidates_.clear();
	extras_.clear();
	// The surviving ids keep their pruning marks: pairs of them were compared
	// at the list's last pruning, and renumbering changes no distance.
	for (const std::uint32_t stored : ids) {
		const std::uint32_t x = stored & ~k_list_checked;
		if (stamp_[x] == epoch_)
			continue;
		stamp_[x] = epoch_;
		if (!removed(x))
			candidates_.push_back({to.distance(v, new_id_[x]), renumbered(stored)});
	}
	hop_.resize(h.m0);
	for (const std::uint32_t stored : ids) {
		const std::uint32_t gone = stored & ~k_list_checked;
		if (!removed(gone))
			continue;
		const std::uint32_t n = list_count(read_list(from_.list(gone, level), hop_.data()));
		for (std::uint32_t i = 0; i < n; ++i) {
			const std::uint32_t x = hop_[i];
			if (stamp_[x] == epoch_ || removed(x))
				continue;
			stamp_[x] = epoch_;
			extras_.push_back({to.distance(v, new_id_[x]), new_id_[x]});
		}
	}
	const std::size_t bound = h.ef_construction;
	if (extras_.size() > bound) {
		std::nth_element(extras_.begin(), extras_.begin() + static_cast<std::ptrdiff_t>(bound), extras_.end());
		extras_.resize(bound);
	}
	candidates_.insert(candidates_.end(), extras_.begin(), extras_.end());
	std::sort(candidates_.begin(), candidates_.end());
	// Chosen like a new node's own list (the wider diversity factor, free slots
	// filled with the nearest rejects) up to what a pruned list keeps: on
	// glove100 with half forgotten that gave recall@10 0.972 at ef 128, as
	// much as a graph built afresh from the survivors (0.974) for the same
	// distance computations, where pruning as an overfull list gave 0.969.
	// Marks are dropped: they record comparisons under the pruning factor.
	for (Neighbor &c : candidates_)
		c.id &= ~k_list_checked;
	to.select_neighbors(candidates_, HnswGraph::pruned_capacity(level, h.m, h.m0), HnswGraph::Selection::new_node,
						level == 0 ? id : k_no_node, kept_, context);
	for (std::size_t i = 0; i < kept_.size(); ++i)
		out_[i] = kept_[i].id;
	store_list(to.list(id, level), out_.data(), static_cast<std::uint32_t>(kept_.size()));
}

void
GraphCompaction::root_subtree(const HnswGraph &to, std::uint32_t id)
{
	const std::size_t first = rooted_order_.size();
	rooted_order_.push_back(id);
	rooted_[id] = 1;
	for (std::size_t next = first; next < rooted_order_.size(); ++next) {
		const std::uint32_t x = rooted_order_[next];
		for (std::uint32_t c = child_start_[x]; c < child_start_[x + 1]; ++c) {
			const std::uint32_t child = children_[c];
			if (rooted_[child] == 0 && to.head(child).parent.load(std::memory_order_relaxed) == x) {
				rooted_[child] = 1;
				rooted_order_.push_back(child);
			}
		}
	}
}

std::uint32_t
GraphCompaction::adoptive_parent(const HnswGraph &to, std::uint32_t orphan)
{
	const std::uint32_t m = to.header_->m;
	const float *v = to.as_float(orphan, vector_.data());
	const std::uint32_t n = list_count(read_list(to.list(orphan, 0), out_.data()));
	candidates_.clear();
	for (std::uint32_t i = 0; i < n; ++i) {
		const std::uint32_t x = out_[i];
		if (rooted_[x] != 0 && to.head(x).children.load(std::memory_order_relaxed) < m)
			candidates_.push_back({to.distance(v, x), x});
	}
	if (candidates_.empty())
		return k_no_node;
	return std::min_element(candidates_.begin(), candidates_.end())->id;
}

void
GraphCompaction::repair_tree(HnswGraph &to, SearchContext &context)
{
	const auto n = static_cast<std::uint32_t>(old_id_.size());
	if (orphans_.empty())
		return;
	if (root_ == k_no_node) {
		// The root was removed: the first orphan heads its subtree already.
		const auto linked =
			std::find_if(orphans_.begin(), orphans_.end(), [&](std::uint32_t id) { return to.is_linked(id); });
		root_ = linked != orphans_.end() ? *linked : orphans_.front();
		orphans_.erase(std::find(orphans_.begin(), orphans_.end(), root_));
		to.head(root_).parent.store(root_, std::memory_order_relaxed);
		++stats_.reattached;
	}
	child_start_.assign(std::size_t{n} + 1, 0);
	for (std::uint32_t id = 0; id < n; ++id) {
		const std::uint32_t parent = to.head(id).parent.load(std::memory_order_relaxed);
		if (parent != k_no_node && parent != id)
			++child_start_[parent + 1];
	}
	for (std::uint32_t id = 0; id < n; ++id)
		child_start_[id + 1] += child_start_[id];
	children_.resize(child_start_[n]);
	std::vector<std::uint32_t> fill(child_start_.begin(), child_start_.end() - 1);
	for (std::uint32_t id = 0; id < n; ++id) {
		const std::uint32_t parent = to.head(id).parent.load(std::memory_order_relaxed);
		if (parent != k_no_node && parent != id)
			children_[fill[parent]++] = id;
	}
	rooted_.assign(n, 0);
	rooted_order_.clear();
	root_subtree(to, root_);

	const std::uint32_t m = to.header_->m;
	const auto adopt = [&](std::uint32_t orphan, std::uint32_t parent) {
		to.head(orphan).parent.store(parent, std::memory_order_relaxed);
		to.head(parent).children.fetch_add(1, std::memory_order_relaxed);
		// The orphan names its parent first, so both connects pin the new edge.
		to.connect(orphan, 0, std::span<const std::uint32_t>(&parent, 1), context);
		to.connect(parent, 0, std::span<const std::uint32_t>(&orphan, 1), context);
		root_subtree(to, orphan);
		++stats_.reattached;
	};
	std::vector<std::uint32_t> waiting;
	while (!orphans_.empty()) {
		waiting.clear();
		for (const std::uint32_t orphan : orphans_) {
			const std::uint32_t parent = adoptive_parent(to, orphan);
			if (parent == k_no_node)
				waiting.push_back(orphan);
			else
				adopt(orphan, parent);
		}
		if (waiting.size() == orphans_.size()) {
			while (to.head(rooted_order_[roomy_]).children.load(std::memory_order_relaxed) >= m)
				++roomy_;
			adopt(waiting.front(), rooted_order_[roomy_]);
			waiting.erase(waiting.begin());
		}
		orphans_.swap(waiting);
	}
}

std::uint64_t
GraphCompaction::choose_entry(const HnswGraph &to) const noexcept
{
	const std::uint64_t entry = from_.header_->entry.load(std::memory_order_acquire);
	if (entry == k_no_entry || linked_ == 0)
		return k_no_entry;
	if (!removed(entry_id(entry)))
		return pack_entry(new_id_[entry_id(entry)], entry_level(entry));
	std::uint32_t best = k_no_node;
	for (std::uint32_t id = 0; id < old_id_.size(); ++id)
		if (to.is_linked(id) && (best == k_no_node || to.level(id) > to.level(best)))
			best = id;
	return pack_entry(best, to.level(best));
}

void
GraphCompaction::publish(HnswGraph &to)
{
	HnswHeader &h = *to.header_;
	const auto n = static_cast<std::uint32_t>(old_id_.size());
	std::uint32_t prefix = 0;
	while (prefix < n && to.is_linked(prefix))
		++prefix;
	h.root = root_ == k_no_node ? 0 : root_;
	// The old bound stays: it says how far the graph has taken in the space's generations.
	h.max_generation.store(from_.header_->max_generation.load(std::memory_order_acquire), std::memory_order_relaxed);
	h.linked.store(linked_, std::memory_order_relaxed);
	h.linked_prefix.store(prefix, std::memory_order_relaxed);
	h.link_cursor.store(prefix, std::memory_order_relaxed);
	h.entry.store(choose_entry(to), std::memory_order_release);
	// Links are frozen, so nobody settles the old graph's stamps now; the
	// rows they wait for are linked in the copy, which takes them over.
	move_link_stamps(from_.header_->link_stamps, h.link_stamps, old_id_);
}

HnswStatus
GraphCompaction::run(std::uint64_t &header_offset, CompactionStats &stats)
{
	const LinkFreeze freeze(from_);
	stats_.bytes_before = from_.memory_bytes();
	survey();
	std::uint64_t offset = 0;
	const HnswStatus created = HnswGraph::create(from_.arena_, configuration(), offset);
	if (created != HnswStatus::ok)
		return created;
	CopyUnderConstruction copy(from_.arena_, offset);
	HnswGraph &to = copy.graph();
	const HnswStatus reserved = reserve(to);
	if (reserved != HnswStatus::ok)
		return reserved;
	const HnswStatus copied = copy_nodes(to);
	if (copied != HnswStatus::ok)
		return copied;
	SearchContext context;
	context.reserve(to, 0);
	vector_.resize(to.dim());
	if (linked_ != 0) {
		copy_lists(to, context);
		repair_tree(to, context);
	}
	publish(to);
	report_copied(old_id_.size());
	stats_.bytes_after = to.memory_bytes();
	copy.keep();
	header_offset = offset;
	stats = stats_;
	return HnswStatus::ok;
}

HnswStatus
compact(const HnswGraph &graph, std::uint64_t horizon, std::uint64_t &header_offset, CompactionStats *stats,
		std::atomic<std::uint64_t> *nodes_copied) noexcept
{
	try {
		GraphCompaction compaction(graph, horizon, nodes_copied);
		CompactionStats ignored;
		return compaction.run(header_offset, stats != nullptr ? *stats : ignored);
	} catch (const std::bad_alloc &) {
		return HnswStatus::out_of_memory;
	}
}

} // namespace engram::core
