// HnswGraph: a process-local handle on one HNSW graph that lives in an Arena.
//
// The graph (hnsw_layout.hpp) is plain bytes addressed by offsets, so the
// same graph can be built on a heap buffer in a test, in PostgreSQL shared
// memory by background workers while backends search it, or written to a
// file and attached again. The handle holds only the arena base, the header
// address and the distance kernels this process chose; it is cheap to copy,
// and every member but destroy() may be called from any number of threads
// (of any number of processes mapping the arena) at once.
//
// Life of a node:
//   append   store the vector (encoded) and its generation; the node gets the
//            next id (ids stay below 2^31). Cheap; appends are serialised by a
//            short spin lock.
//   link     insert the node into the graph (the costly part). Any number of
//            threads may link different nodes at once; each node is linked
//            at most once (a claim bit makes a second call a no-op).
//   forget   hide the node from every snapshot at or after a generation; it
//            stays in the graph as a bridge until compaction removes it.
// Searches run concurrently with all of these. A node between append and the
// end of its link is found by exact_search over [linked_prefix(), size());
// snapshot_search() combines both, which is what recall needs.
//
// Link gate: lets a graph file be written (graph_file.hpp) from a graph whose
// lists do not change, while appends, deletes and searches go on. Linkers take
// a turn (begin_link_turn, or a LinkTurn) before claim_unlinked and end it
// once the links of that claim are done; freeze_links refuses new turns and
// waits for those in flight, so from its return until thaw_links no link
// changes the graph. A turn raises link_turns, then reads link_freezes; a
// freeze raises link_freezes, then reads link_turns; both sequentially
// consistent, so either the turn sees the freeze or the freeze sees the turn.
// The counters live in the header, so the gate spans processes; freezes nest.
// link() itself does not look at the gate: a linker that shares the graph
// with a file writer must take turns. A thread must not freeze links while it
// holds a turn (it would wait for itself).
//
// Snapshot filter: every node carries the generation at which it became
// visible and the generation at which it was forgotten (k_never_forgotten
// until then). A search with max_generation G returns only nodes with
// generation <= G < forgotten, but still walks through the others, so a
// filter never cuts the graph apart; an attribute filter (tokens, a time
// window) works the same way. When G covers every stored node, no forgotten
// node is hidden at G and no attribute filter is given, a specialised search
// without per-node checks runs instead.
//
// Labels and attributes: a node carries the caller's label (engram: the
// observation id), its clock value observed_at and a set of 64-bit
// attribute tokens (attribute_token.hpp). A label table finds the newest node
// of a label, which forget() hides: an update re-appends a label, so the
// caller forgets the old node before appending the new one (or forgets a
// node by id with forget_node()).
//
// Errors are values (HnswStatus). Searches and links allocate only when a
// SearchContext must grow beyond what it was reserved for; that may throw
// std::bad_alloc and nothing else.
#pragma once

#include <cstddef>
#include <csignal>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "core/arena.hpp"
#include "core/distance.hpp"
#include "core/hnsw_layout.hpp"
#include "core/quantize.hpp"
#include "core/scoring.hpp"
#include "core/segmented_array.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

class SearchContext;

enum class HnswStatus : std::uint8_t {
	ok = 0,
	invalid_config,     // dim, m or ef_construction out of range
	invalid_header,     // the offset does not hold a graph of this layout version
	dimension_mismatch, // vector or query of the wrong length
	invalid_vector,     // a non-finite component, or a zero vector under cosine
	out_of_memory,      // the arena is exhausted
	too_many_nodes,     // ids would pass 2^31 - 1
	unknown_node,       // id not below size()
	interrupted,        // SearchParams::interrupt was raised: the search stopped early
	too_many_tokens,    // a node with more than k_max_node_tokens attribute tokens
};

const char *to_string(HnswStatus status) noexcept;

inline constexpr std::uint32_t k_hnsw_max_dim = 65535;
inline constexpr std::uint32_t k_hnsw_max_m = 127;

// A scored snapshot_search ranks the max(ef, k_score_widening · k) nearest
// candidates by score (hnsw_recall.cpp).
inline constexpr std::uint32_t k_score_widening = 8;

struct HnswConfig {
	std::uint32_t dim = 0;
	Metric metric = Metric::l2;
	Encoding encoding = Encoding::float32;
	std::uint32_t m = 16;                // links per node on upper levels; 2m on level 0
	std::uint32_t ef_construction = 64;  // beam width while linking
	std::uint64_t seed = 0x5eed;         // decides node levels
	std::uint32_t first_chunk_log2 = 10; // nodes in the first chunk of each array, as a power of two
	// Elements per chunk once chunks stop doubling, as a power of two; 0 lets
	// chunks grow to about 32 MB (segmented_array.hpp). Small values only make
	// tests reach the index blocks of a large graph with little memory.
	std::uint32_t max_chunk_log2 = 0;
};

struct Neighbor {
	float distance;
	std::uint32_t id;

	friend bool operator<(const Neighbor &a, const Neighbor &b) noexcept
	{
		return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
	}
	friend bool operator==(const Neighbor &, const Neighbor &) = default;
};

// Float32 vectors kept outside the graph (for example the vector store), used
// to re-rank the candidates of a float16 or sq8 graph exactly.
struct VectorSource {
	const float *(*vector)(const void *self, std::uint32_t id) noexcept;
	const void *self;
};

// What a stored node carries besides its vector.
struct NodeData {
	std::uint64_t generation = 0;            // visible to snapshots at or after it
	std::int64_t label = 0;                  // the caller's name for the node
	float confidence = 1.0f;                 // searches can ask for a minimum
	std::int64_t observed_at = 0;            // caller's clock (engram: PostgreSQL microseconds since 2000-01-01)
	std::span<const std::uint64_t> tokens{}; // any order, duplicates allowed; at most k_max_node_tokens
};

enum class ForgetResult : std::uint8_t { forgotten, not_found, already_forgotten };

// What a node's attributes must satisfy to be returned.
struct AttributeFilter {
	std::span<const std::uint64_t> tokens; // sorted, unique; a node must hold every one
	std::int64_t observed_after = std::numeric_limits<std::int64_t>::min();  // inclusive
	std::int64_t observed_before = std::numeric_limits<std::int64_t>::max(); // exclusive
};

struct SearchParams {
	std::uint32_t k = 10;
	std::uint32_t ef = 64; // beam width on level 0; raised to k if smaller
	std::uint64_t max_generation = std::numeric_limits<std::uint64_t>::max();
	float min_confidence = -std::numeric_limits<float>::infinity(); // nodes below it are not returned
	const VectorSource *rerank = nullptr;                           // only used when the encoding is not float32
	const AttributeFilter *filter = nullptr;                        // nodes that fail it are not returned
	// snapshot_search only: rank by score() (scoring.hpp) instead of distance.
	const Scoring *scoring = nullptr;
	// When given, read every few hundred nodes: once it is non-zero the search
	// stops and returns HnswStatus::interrupted. A volatile sig_atomic_t, as
	// a signal handler sets it (PostgreSQL passes &InterruptPending).
	const volatile std::sig_atomic_t *interrupt = nullptr;
};

struct SearchStats {
	std::uint64_t distances = 0; // distance computations
	std::uint64_t expanded = 0;  // nodes whose lists were read
};

struct SearchResult {
	HnswStatus status = HnswStatus::ok;
	// Nearest first (highest score first under SearchParams::scoring); lives
	// in the context until its next use.
	std::span<const Neighbor> neighbors;
	SearchStats stats;
};

class HnswGraph {
public:
	// Lays out an empty graph in the arena and returns its header offset.
	static HnswStatus create(Arena arena, const HnswConfig &config, std::uint64_t &header_offset) noexcept;
	// Whether header_offset holds a graph this code can attach to.
	static HnswStatus check(Arena arena, std::uint64_t header_offset) noexcept;
	// Attaches to a graph that check() accepted.
	HnswGraph(Arena arena, std::uint64_t header_offset) noexcept;

	// Makes room for `nodes` nodes and `tokens` token slots in total (count
	// from token_slots(); a node's tokens before removing duplicates)
	// without stopping readers; the appends that follow cannot fail for
	// want of memory until then (while no one else appends in between).
	HnswStatus reserve(std::uint64_t nodes, std::uint64_t tokens = 0) noexcept;

	// Stores one vector visible from `generation` on; id receives its node id.
	HnswStatus append(std::span<const float> vector, std::uint64_t generation, std::uint32_t &id) noexcept;
	HnswStatus append(std::span<const float> vector, const NodeData &data, std::uint32_t &id) noexcept;
	// Stores data.size() vectors laid end to end; first receives the first id.
	HnswStatus append_batch(std::span<const float> vectors, std::span<const NodeData> data,
							std::uint32_t &first) noexcept;
	HnswStatus append_batch(std::span<const float> vectors, std::span<const std::uint64_t> generations,
							std::uint32_t &first) noexcept;
	// Hands out up to `max` stored ids that no earlier call handed out, for a
	// linker to link; returns how many, starting at first. Several linkers (in
	// any processes) share the work of one graph this way.
	std::uint32_t claim_unlinked(std::uint32_t max, std::uint32_t &first) noexcept;
	// Whether claim_unlinked() would hand out anything now.
	bool has_unclaimed() const noexcept { return header_->link_cursor.load(std::memory_order_acquire) < size(); }
	// Links a stored node into the graph. False if it was already claimed by
	// another link call (or id is not stored). A link that throws (std::bad_alloc)
	// releases what it holds and gives the node back: claim_unlinked() hands
	// it out again, and link() may be called for it again.
	bool link(std::uint32_t id, SearchContext &context);
	// The link gate (see the top of this file). begin_link_turn() is false,
	// and nothing is held, while a freeze is in force; otherwise the caller
	// may claim and link until end_link_turn(). freeze_links() returns once
	// no turn is in flight and keeps new ones out until thaw_links(); it
	// sleeps while it waits. Freezes are counted, so they nest.
	bool begin_link_turn() noexcept;
	void end_link_turn() noexcept;
	void freeze_links() const noexcept;
	void thaw_links() const noexcept;
	// Whether a freeze is in force now (a hint: it may end at any moment).
	bool links_frozen() const noexcept { return header_->link_freezes.load(std::memory_order_acquire) != 0; }
	// append + link.
	HnswStatus insert(std::span<const float> vector, std::uint64_t generation, SearchContext &context,
					  std::uint32_t *id = nullptr);

	// The newest node labelled `label` is hidden from `generation` on (from
	// its own generation if that is later). One thread at a time per graph
	// may forget; searches, links and appends go on meanwhile. A node stays
	// forgotten at the generation it was first forgotten at.
	ForgetResult forget(std::int64_t label, std::uint64_t generation) noexcept;
	// The same for node `id` (not_found if it is not stored).
	ForgetResult forget_node(std::uint32_t id, std::uint64_t generation) noexcept;
	// The newest node labelled `label`.
	std::optional<std::uint32_t> find_label(std::int64_t label) const noexcept;

	// Approximate k nearest linked nodes visible at params.max_generation
	// that pass params.filter (scoring is not applied).
	SearchResult search(std::span<const float> query, const SearchParams &params, SearchContext &context) const;
	// Exact k nearest among visible nodes with ids in [from, to) ∩ [0, size())
	// that pass params.filter (scoring is not applied).
	SearchResult exact_search(std::span<const float> query, const SearchParams &params, std::uint32_t from,
							  std::uint32_t to, SearchContext &context) const;
	// What recall runs (hnsw_recall.cpp): every stored node visible at
	// params.max_generation that passes params.filter is a candidate, linked
	// or not, and it returns min(k, number of such nodes) of them (unless
	// interrupted): a graph search where many nodes pass, an exact scan where
	// few do, and the exact scan after a graph search that came back short.
	// Under params.scoring it takes the max(ef, 8k) nearest candidates and
	// returns the k of highest score.
	SearchResult snapshot_search(std::span<const float> query, const SearchParams &params,
								 SearchContext &context) const;

	std::uint64_t size() const noexcept { return header_->count.load(std::memory_order_acquire); }
	std::uint64_t linked_prefix() const noexcept { return header_->linked_prefix.load(std::memory_order_acquire); }
	// Nodes whose link has finished.
	std::uint64_t linked_count() const noexcept { return header_->linked.load(std::memory_order_acquire); }
	// Commit stamps of stored rows until they are linked (link_stamps.hpp).
	// After appending ids [end - rows, end) committed at `stamp`, the one
	// appender records them and settles (they may be linked already); every
	// linker settles after its links. Settling records the rows whose links
	// have all finished in `latency` (if not null); returns how many.
	void stamp_stored(std::uint32_t end, std::uint32_t rows, std::uint32_t stamp) noexcept
	{
		push_link_stamp(header_->link_stamps, end, rows, stamp);
	}
	std::uint64_t settle_link_stamps(LatencyHistogram *latency) noexcept;
	// Whether rows stamped by stamp_stored() wait to be settled (at all, or
	// among ids below `end`).
	bool has_link_stamps() const noexcept { return has_pending_link_stamps(header_->link_stamps); }
	bool link_stamps_settled_to(std::uint64_t end) const noexcept
	{
		return engram::core::link_stamps_settled_to(header_->link_stamps, end);
	}
	// Links that failed (and gave their node back to be linked again).
	std::uint64_t failed_links() const noexcept { return header_->failed_links.load(std::memory_order_relaxed); }
	// Highest generation among stored nodes.
	std::uint64_t max_generation() const noexcept { return header_->max_generation.load(std::memory_order_acquire); }
	// Nodes forgotten at some generation (still stored).
	std::uint64_t forgotten_count() const noexcept { return header_->forgotten.load(std::memory_order_acquire); }
	// Token slots used so far: what reserve()'s token total counts from.
	std::uint64_t token_slots() const noexcept { return header_->tokens_used.load(std::memory_order_acquire); }
	std::uint32_t dim() const noexcept { return header_->dim; }
	Metric metric() const noexcept { return header_->metric; }
	Encoding encoding() const noexcept { return header_->encoding; }
	std::uint32_t m() const noexcept { return header_->m; }
	std::uint32_t m0() const noexcept { return header_->m0; }
	std::uint32_t ef_construction() const noexcept { return header_->ef_construction; }
	std::uint64_t header_offset() const noexcept { return header_offset_; }

	// Per-node facts; id must be below size().
	std::uint64_t generation(std::uint32_t id) const noexcept { return head(id).generation; }
	std::int64_t label(std::uint32_t id) const noexcept { return head(id).label; }
	float confidence(std::uint32_t id) const noexcept { return head(id).confidence; }
	std::int64_t observed_at(std::uint32_t id) const noexcept { return head(id).observed_at; }
	// The first generation that does not see the node, or k_never_forgotten.
	std::uint64_t forgotten(std::uint32_t id) const noexcept
	{
		return head(id).forgotten.load(std::memory_order_acquire);
	}
	// Its attribute tokens, sorted and unique.
	std::span<const std::uint64_t> tokens(std::uint32_t id) const noexcept;
	std::uint32_t level(std::uint32_t id) const noexcept { return head(id).level; }
	bool is_linked(std::uint32_t id) const noexcept;
	// Copies a consistent snapshot of a list into out (room for m0 ids); returns its length.
	std::uint32_t neighbors(std::uint32_t id, std::uint32_t level, std::span<std::uint32_t> out) const noexcept;
	// Decodes the stored vector (normalised under cosine).
	void stored_vector(std::uint32_t id, std::span<float> out) const noexcept;
	// Entry node and top level, or k_no_node when the graph has no linked node.
	std::uint32_t entry_point() const noexcept;
	std::uint32_t max_level() const noexcept;

	// Bytes of arena memory the graph holds (header, nodes, vectors, upper
	// lists, attributes, tokens, label table), including room already
	// allocated for nodes not stored yet.
	std::size_t memory_bytes() const noexcept;
	// Bytes the size() stored nodes occupy (header, their blocks, vectors,
	// upper lists, attributes, tokens and twice their label slots).
	std::size_t used_bytes() const noexcept;
	// Returns all memory to the arena; no other handle may use the graph afterwards.
	void destroy() noexcept;

private:
	// Writes graph files from the private layout and restores them into it (graph_file.cpp).
	friend class GraphFileAccess;
	// Copies a graph without its forgotten nodes (hnsw_compact.cpp).
	friend class GraphCompaction;

	const NodeHead &head(std::uint32_t id) const noexcept { return *nodes_.at_as<const NodeHead>(id); }
	NodeHead &head(std::uint32_t id) noexcept { return *nodes_.at_as<NodeHead>(id); }
	const std::byte *vector_bytes(std::uint32_t id) const noexcept { return vectors_.at(id); }
	ListRef list(std::uint32_t id, std::uint32_t level) const noexcept
	{
		std::byte *word = level == 0 ? nodes_.at(id) + sizeof(NodeHead)
									 : upper_.at(std::uint64_t{head(id).upper} + level - 1);
		return ListRef{reinterpret_cast<std::atomic<std::uint32_t> *>(word),
					   reinterpret_cast<std::atomic<std::uint32_t> *>(word + 4)};
	}
	float distance(const float *query, std::uint32_t id) const noexcept
	{
		return distance_(query, vector_bytes(id), header_->dim);
	}
	// What a search measures from: a float query, or the node a link
	// inserts: its stored codes in an sq8 graph (compared code to code by the
	// pair kernel, no decoding), otherwise its floats (in place, or decoded
	// into buffer).
	struct Probe {
		const float *floats;
		const std::byte *codes;
	};
	Probe probe_of(std::uint32_t id, float *buffer) const noexcept
	{
		if (pair_distance_ != nullptr)
			return {nullptr, vector_bytes(id)};
		return {as_float(id, buffer), nullptr};
	}
	static Probe probe_of(const float *query) noexcept { return {query, nullptr}; }
	float distance(const Probe &probe, const std::byte *stored) const noexcept
	{
		return probe.codes != nullptr ? pair_distance_(probe.codes, stored, header_->dim)
									  : distance_(probe.floats, stored, header_->dim);
	}
	float distance(const Probe &probe, std::uint32_t id) const noexcept { return distance(probe, vector_bytes(id)); }
	// Distance to a float32 vector from a VectorSource (not normalised, even under cosine).
	float source_distance(const float *query, const float *vector) const noexcept;
	// The stored vector as floats: in place for float32, decoded into buffer otherwise.
	const float *as_float(std::uint32_t id, float *buffer) const noexcept
	{
		if (header_->encoding == Encoding::float32)
			return reinterpret_cast<const float *>(vector_bytes(id));
		decode(header_->encoding, vector_bytes(id), std::span<float>(buffer, header_->dim));
		return buffer;
	}
	std::uint32_t level_of(std::uint64_t id) const noexcept;
	HnswStatus validate(std::span<const float> vector) const noexcept;
	const NodeAttrs &attrs(std::uint32_t id) const noexcept { return *attrs_.at_as<const NodeAttrs>(id); }
	// Stores the node's tokens at token slot *used (moved past a chunk end if
	// needed) and advances *used; capacity was ensured for them.
	void store_tokens(std::uint32_t id, std::span<const std::uint64_t> tokens, std::uint64_t &used) noexcept;
	// Token slots past `used` that appends of `tokens` slots in all may take.
	std::uint64_t token_slots_needed(std::uint64_t used, std::uint64_t tokens) const noexcept;
	// Hides node id from `generation` on; the caller serialises forgets.
	ForgetResult hide(std::uint32_t id, std::uint64_t generation) noexcept;

	// hnsw_label_index.cpp; all under the append lock.
	// Makes room for `more` new labels; false when the arena cannot hold the table.
	bool reserve_labels(std::uint64_t more) noexcept;
	// Maps label to node (replacing an older node of the label); room was reserved.
	void index_label(std::int64_t label, std::uint32_t node) noexcept;
	std::uint32_t lookup_label(std::int64_t label) const noexcept;
	void release_labels() noexcept;
	// The appends: node data from `data` if given, else generation only (label = id).
	HnswStatus append_nodes(std::span<const float> vectors, std::size_t n, const NodeData *data,
							const std::uint64_t *generations, std::uint32_t &first) noexcept;
	// Appends one node as a graph or a file held it: its encoded vector bytes
	// copied, and its level as given rather than from the hash of its id (a
	// compacted graph's renumbered nodes keep their levels). For the graph's
	// friends, which trust the bytes they pass.
	HnswStatus append_stored(std::span<const std::byte> encoded, const NodeData &data, std::uint32_t level,
							 std::uint32_t &id) noexcept;
	// Lays out node id (head, empty lists, tokens, label) under the append
	// lock, with room ensured; advances the upper blocks and token slots used.
	void construct_node(std::uint32_t id, const NodeData &data, std::uint32_t level, std::uint64_t &upper,
						std::uint64_t &tokens_used) noexcept;
	// Normalises a validated query (cosine) into the context, or points at it.
	const float *prepare_query(std::span<const float> query, SearchContext &context) const;

	// hnsw_search.cpp
	void greedy_descend(const Probe &query, std::uint32_t &current, float &current_distance, std::uint32_t from_level,
						std::uint32_t to_level, std::uint64_t limit, SearchContext &context,
						SearchStats &stats) const noexcept;
	// Beam of width ef on one level; leaves context.results_ sorted, nearest
	// first. False if it stopped early because *interrupt was raised.
	bool beam_search(const Probe &query, std::uint32_t entry, float entry_distance, std::uint32_t level,
					 std::uint32_t ef, std::uint64_t limit, const volatile std::sig_atomic_t *interrupt,
					 SearchContext &context, SearchStats &stats) const;
	// What a search may return: the snapshot, confidence and attribute
	// filter of its SearchParams, prepared once per search.
	struct Predicate {
		std::uint64_t max_generation;
		float min_confidence;
		const AttributeFilter *filter; // nullptr when the filter asks nothing
		std::uint32_t bloom;           // token_bloom() of every filter token
	};
	Predicate predicate_of(const SearchParams &params) const noexcept;
	bool matches(std::uint32_t id, const Predicate &predicate) const noexcept;
	// The same on level 0, returning only nodes that match the predicate.
	bool filtered_search(const float *query, std::uint32_t entry, float entry_distance, std::uint32_t ef,
						 std::uint64_t limit, const SearchParams &params, const Predicate &predicate,
						 SearchContext &context, SearchStats &stats) const;
	void finish_results(const float *query, const SearchParams &params, SearchContext &context) const;

	// hnsw_recall.cpp
	// Whether an exact scan of every node should answer a filtered search,
	// judged from a sample of the nodes.
	bool prefer_exact(const Predicate &predicate, std::uint32_t ef) const noexcept;
	// search() over the linked nodes merged with exact_search() over the rest.
	SearchResult graph_and_tail(std::span<const float> query, const SearchParams &params, SearchContext &context) const;
	// Orders context.out_ by score and keeps its first k.
	void rank_by_score(const Scoring &scoring, std::uint32_t k, SearchContext &context) const;

	// hnsw_insert.cpp
	// Level-0 list lengths a new node keeps, and a pruned list (sizes and reasons there).
	static std::uint32_t own_capacity(std::uint32_t level, std::uint32_t m) noexcept;
	static std::uint32_t pruned_capacity(std::uint32_t level, std::uint32_t m, std::uint32_t m0) noexcept;
	enum class Selection : std::uint8_t { new_node, overfull_list };
	void select_neighbors(std::span<const Neighbor> candidates, std::uint32_t capacity, Selection selection,
						  std::uint32_t pin_owner, std::vector<Neighbor> &kept, SearchContext &context) const;
	// Reserves a child slot of `parent` if it is in the tree and has room.
	bool try_adopt(std::uint32_t parent) noexcept;
	// The nearest candidate that takes the linking node as a child, or any tree node with room.
	std::uint32_t adopt_parent(std::span<const Neighbor> candidates, SearchContext &context);
	void connect(std::uint32_t id, std::uint32_t level, std::span<const std::uint32_t> added, SearchContext &context);
	void mark_linked(std::uint32_t id) noexcept;
	// link() after its claim; may throw, leaving the node for give_back().
	void link_claimed(std::uint32_t id, SearchContext &context);
	// Undoes the claim of a node whose link failed, so it is linked again later.
	void give_back(std::uint32_t id) noexcept;

	Arena arena_;
	std::uint64_t header_offset_;
	HnswHeader *header_;
	SegmentedArray nodes_;
	SegmentedArray vectors_;
	SegmentedArray upper_;
	SegmentedArray attrs_;
	SegmentedArray tokens_;
	DistanceFn distance_;          // query against a stored vector
	DistanceFn float32_distance_;  // query against a float32 vector (re-ranking)
	PairDistanceFn pair_distance_; // stored sq8 node against another (linking), null for other encodings
	std::uint32_t prefetch_lines_; // cache lines of a vector prefetched ahead of its distance
};

// One link turn of a graph, ended when it goes out of scope (so a link that
// throws still ends it). Empty, holding nothing, if the graph's links are frozen.
class LinkTurn {
public:
	explicit LinkTurn(HnswGraph &graph) noexcept : graph_(graph.begin_link_turn() ? &graph : nullptr) {}
	LinkTurn(const LinkTurn &) = delete;
	LinkTurn &operator=(const LinkTurn &) = delete;
	~LinkTurn()
	{
		if (graph_ != nullptr)
			graph_->end_link_turn();
	}

	explicit operator bool() const noexcept { return graph_ != nullptr; }

private:
	HnswGraph *graph_;
};

// Keeps a graph's links frozen (the link gate) for as long as it lives.
class LinkFreeze {
public:
	explicit LinkFreeze(const HnswGraph &graph) noexcept : graph_(graph) { graph_.freeze_links(); }
	LinkFreeze(const LinkFreeze &) = delete;
	LinkFreeze &operator=(const LinkFreeze &) = delete;
	~LinkFreeze() { graph_.thaw_links(); }

private:
	const HnswGraph &graph_;
};

} // namespace engram::core
