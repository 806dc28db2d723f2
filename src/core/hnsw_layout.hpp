// The bytes of an HNSW graph inside an Arena, and the protocol for reading and
// writing one neighbour list.
//
// Memory. A graph is one HnswHeader placed in the arena plus five segmented
// arrays whose chunks also live there, and one label table, so the graph is
// position independent (shared memory mapped at different addresses, or a
// file read back):
//   nodes   fixed-stride level-0 blocks: NodeHead, then the level-0 list
//           (one list word and up to m0 = 2m ids); stride rounded to 64,
//           so with m = 16 a block is 48 + 4 + 128 -> 192 bytes.
//   vectors one encoded vector per node (quantize.hpp), stride rounded to 64
//           so every vector starts on its own cache line.
//   upper   fixed-stride upper-level lists (a list word and up to m ids). A
//           node of level L owns L consecutive blocks starting at
//           NodeHead::upper: block upper + l - 1 is its list at level l.
//   attrs   one NodeAttrs per node: where its attribute tokens are.
//   tokens  the attribute tokens (u64) of every node, each node's sorted,
//           unique and contiguous; a node's run never crosses a chunk
//           boundary (it starts at the next chunk when it would), so a
//           node's tokens are one span. Runs hold at most
//           k_max_node_tokens and chunks at least that many elements.
//   labels  an open-addressing table (one arena block, replaced by a block
//           twice the size when it passes half full) from a label to the
//           newest node carrying it; read and written only under the
//           append lock (hnsw_label_index.cpp).
// Nothing holds a pointer; elements are found by index and arena offset.
//
// Publication. A node's generation, level, upper index, vector and empty
// lists are written before the header's `count` is released past it, and the
// node becomes reachable only through a list word or the entry word released
// later, so readers that acquire those never see a half-written node.
// Entry point and max level share one 64-bit word so they change together.
//
// List protocol (a per-list seqlock whose lock is one bit). A list word is
//   [version:23][lock:1][count:8]
// Writers take the lock with a CAS from the exact unlocked word they read,
// store ids with release, then store the new count and version + 1 with
// release (which unlocks). Readers acquire the word, spin while it is locked,
// copy the ids with acquire loads, and accept the copy only if the word has
// not changed. Every access to a list is atomic, so concurrent readers and
// writers are free of data races (ThreadSanitizer-clean); readers never write
// shared memory, so they do not bounce cache lines between cores; and a
// writer holds the bit only while storing at most 255 ids, never while
// computing distances. The top bit of a stored id is a mark for writers (an
// id that passed the pruning heuristic when the list was last pruned, see
// hnsw_insert.cpp); read_list() clears it for everyone else. No thread ever
// holds two list locks at once, so there
// is no lock order to respect and no deadlock. The graph-wide `top_lock` is
// taken only by an insert whose level exceeds the current max level (and by
// the first insert); it is held for that whole insert and never taken while
// holding a list lock. The append and top locks are held through a
// SpinLockGuard, so an insert that fails half-way (std::bad_alloc) releases
// them; a list lock is held only while ids are stored, which cannot fail.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>

#include "core/distance.hpp"
#include "core/link_stamps.hpp"
#include "core/segmented_array.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

inline constexpr std::uint64_t k_hnsw_magic = 0x454e4752414d484eULL; // "ENGRAMHN"
inline constexpr std::uint32_t k_hnsw_layout_version = 8;
inline constexpr std::uint32_t k_no_node = 0xFFFFFFFFu;
// Node ids stay below 2^31: the search beam keeps an "expanded" mark in the top
// bit, and stored lists a "checked" mark (k_list_checked).
inline constexpr std::uint64_t k_max_nodes = 0x7FFFFFFFu;
inline constexpr std::uint64_t k_no_entry = ~std::uint64_t{0};
inline constexpr std::uint32_t k_max_level = 30;

inline constexpr std::uint32_t k_list_count_mask = 0xFFu;
inline constexpr std::uint32_t k_list_lock_bit = 0x100u;
inline constexpr std::uint32_t k_list_version_step = 0x200u;
// Top bit of a stored id: it passed the pruning heuristic at the list's last
// pruning (ids stay below 2^31, so the bit is free).
inline constexpr std::uint32_t k_list_checked = 0x80000000u;

inline constexpr std::uint8_t k_node_linked = 2;  // its link has finished
inline constexpr std::uint8_t k_node_claimed = 4; // a link call has started

// NodeHead::forgotten of a node no snapshot hides.
inline constexpr std::uint64_t k_never_forgotten = ~std::uint64_t{0};
// Attribute tokens one node may carry (and the smallest tokens chunk).
inline constexpr std::uint32_t k_max_node_tokens = 1024;
inline constexpr std::uint32_t k_tokens_min_chunk_log2 = 10;
static_assert((std::uint32_t{1} << k_tokens_min_chunk_log2) >= k_max_node_tokens);

struct HnswHeader {
	std::uint64_t magic;
	std::uint32_t layout_version;
	std::uint32_t dim;
	Metric metric;
	Encoding encoding;
	std::uint8_t m;  // list capacity on upper levels
	std::uint8_t m0; // list capacity on level 0 (2m)
	std::uint32_t ef_construction;
	std::uint32_t node_stride;   // bytes per level-0 block
	std::uint32_t vector_bytes;  // encoded bytes per vector
	std::uint32_t vector_stride; // vector_bytes rounded to 64 (float32) or 16 (quantized)
	std::uint32_t upper_stride;  // bytes per upper-level block
	double level_multiplier;     // 1 / ln(m)
	std::uint64_t seed;          // levels are a hash of (seed, id)
	std::uint32_t root;          // first linked node: the root of the level-0 spanning tree
	std::uint32_t unused;

	alignas(64) std::atomic<std::uint64_t> entry; // [max level:32][entry id:32] or k_no_entry
	std::atomic<std::uint32_t> top_lock;
	std::atomic<std::uint32_t> append_lock;

	// Read by every search and link; written only by appends and forgets.
	alignas(64) std::atomic<std::uint64_t> count; // stored nodes, ids [0, count)
	std::atomic<std::uint64_t> upper_used;        // upper blocks handed out
	std::atomic<std::uint64_t> max_generation;    // of every stored node
	std::atomic<std::uint64_t> forgotten;         // nodes whose forgotten is not k_never_forgotten
	std::atomic<std::uint64_t> lowest_forgotten;  // least NodeHead::forgotten, k_never_forgotten if none
	std::atomic<float> lowest_confidence;         // of every stored node
	std::atomic<std::uint64_t> tokens_used;       // token slots handed out (runs and skipped chunk tails)
	// The label table: written only under the append lock, atomics only so
	// that memory_bytes() may read its size from any thread.
	std::atomic<std::uint64_t> labels;         // arena offset of LabelSlot[label_capacity], 0 if none
	std::atomic<std::uint64_t> label_capacity; // slots, a power of two (0 if none)
	std::atomic<std::uint64_t> label_used;     // slots holding a label
	// Written at the end of every link: on its own cache line, so that
	// linking threads do not invalidate the line every search reads.
	alignas(64) std::atomic<std::uint64_t> linked_prefix; // every id below it is linked
	std::atomic<std::uint64_t> linked;                    // nodes whose link has finished
	std::atomic<std::uint64_t> link_cursor;               // ids below it were handed out to link
	std::atomic<std::uint64_t> failed_links;              // links that failed and gave their node back
	// The link gate (hnsw_graph.hpp): linkers inside a turn, and freezes in force.
	std::atomic<std::uint32_t> link_turns;
	std::atomic<std::uint32_t> link_freezes;

	SegmentedArrayHeader nodes;
	SegmentedArrayHeader vectors;
	SegmentedArrayHeader upper;
	SegmentedArrayHeader attrs;
	SegmentedArrayHeader tokens;

	// Commit stamps of the stored rows not yet linked (link_stamps.hpp): on
	// their own cache line, written once per stored batch and per settle.
	alignas(64) LinkStamps link_stamps;
};
static_assert(std::is_standard_layout_v<HnswHeader>);
static_assert(std::is_trivially_destructible_v<HnswHeader>);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::uint8_t>::is_always_lock_free);
static_assert(std::atomic<float>::is_always_lock_free);

// The first bytes of a level-0 block; the level-0 list word and its ids follow.
// A node is visible to a snapshot G iff generation <= G < forgotten.
struct NodeHead {
	std::uint64_t generation;           // the node is visible to snapshots >= this
	std::int64_t label;                 // the caller's name for the node (an observation id)
	float confidence;                   // searches may ask for a minimum
	std::uint32_t upper;                // first upper block (valid when level > 0)
	std::atomic<std::uint32_t> parent;  // spanning-tree parent on level 0 (hnsw_insert.cpp);
										// k_no_node until linked, itself for the root
	std::uint8_t level;                 // top level of the node
	std::atomic<std::uint8_t> flags;    // k_node_linked | k_node_claimed
	std::atomic<std::uint8_t> children; // nodes whose parent this node is, at most m
	std::uint8_t unused;
	std::atomic<std::uint64_t> forgotten; // first generation that does not see it, or k_never_forgotten
	std::int64_t observed_at;             // the caller's clock
};
static_assert(std::is_standard_layout_v<NodeHead>);
static_assert(sizeof(NodeHead) == 48);

// Where one node's attribute tokens are (the attrs array).
struct NodeAttrs {
	std::uint64_t first; // index of its first token in the tokens array
	std::uint32_t count; // tokens, sorted and unique
	std::uint32_t bloom; // token_bloom() of each token, or-ed
};
static_assert(sizeof(NodeAttrs) == 16);

// One slot of the label table: the node's id (k_no_node when empty) and the
// 32 bits of the label's hash that place it, so probes and rehashing rarely
// read node heads.
struct LabelSlot {
	std::uint32_t hash;
	std::uint32_t node;
};
static_assert(sizeof(LabelSlot) == 8);

// The two bits a token sets in a node's (or a filter's) 32-bit bloom: a node
// can hold every token of a filter only if its bloom covers the filter's.
inline std::uint32_t
token_bloom(std::uint64_t token) noexcept
{
	token ^= token >> 33;
	token *= 0xff51afd7ed558ccdULL;
	token ^= token >> 33;
	return (std::uint32_t{1} << (token & 31)) | (std::uint32_t{1} << ((token >> 5) & 31));
}
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

// A list as the code sees it: its word and its id slots (inside a level-0
// block right after NodeHead, or at the start of an upper block).
struct ListRef {
	std::atomic<std::uint32_t> *word;
	std::atomic<std::uint32_t> *ids;
};

inline std::uint32_t
list_count(std::uint32_t word) noexcept
{
	return word & k_list_count_mask;
}

inline void
cpu_relax() noexcept
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

// The append and top locks: held for bounded work, waiters yield the CPU.
inline void
spin_lock(std::atomic<std::uint32_t> &lock) noexcept
{
	for (;;) {
		if (lock.exchange(1, std::memory_order_acquire) == 0)
			return;
		while (lock.load(std::memory_order_relaxed) != 0)
			std::this_thread::yield();
	}
}

inline void
spin_unlock(std::atomic<std::uint32_t> &lock) noexcept
{
	lock.store(0, std::memory_order_release);
}

// Holds an append or top lock until unlock() or the end of its scope, so no
// way out of a critical section (an exception included) leaves it held.
class SpinLockGuard {
public:
	SpinLockGuard() noexcept = default;
	explicit SpinLockGuard(std::atomic<std::uint32_t> &lock) noexcept { acquire(lock); }
	SpinLockGuard(const SpinLockGuard &) = delete;
	SpinLockGuard &operator=(const SpinLockGuard &) = delete;
	~SpinLockGuard() { unlock(); }

	void acquire(std::atomic<std::uint32_t> &lock) noexcept
	{
		unlock();
		spin_lock(lock);
		lock_ = &lock;
	}
	void unlock() noexcept
	{
		if (lock_ != nullptr)
			spin_unlock(*lock_);
		lock_ = nullptr;
	}
	bool held() const noexcept { return lock_ != nullptr; }

private:
	std::atomic<std::uint32_t> *lock_ = nullptr;
};

// Copies a consistent snapshot of the list into out (room for its capacity)
// and returns the word it belongs to; the count is list_count(word). Ids come
// without their k_list_checked mark unless keep_marks (for a list's writer).
inline std::uint32_t
read_list(ListRef list, std::uint32_t *out, bool keep_marks = false) noexcept
{
	const std::uint32_t mask = keep_marks ? ~0u : ~k_list_checked;
	for (;;) {
		const std::uint32_t word = list.word->load(std::memory_order_acquire);
		if (word & k_list_lock_bit) {
			cpu_relax();
			continue;
		}
		const std::uint32_t n = list_count(word);
		for (std::uint32_t i = 0; i < n; ++i)
			out[i] = list.ids[i].load(std::memory_order_acquire) & mask;
		if (list.word->load(std::memory_order_relaxed) == word)
			return word;
	}
}

// Locks the list if its word still equals `seen` (unlocked); false otherwise.
inline bool
try_lock_list(ListRef list, std::uint32_t seen) noexcept
{
	return list.word->compare_exchange_strong(seen, seen | k_list_lock_bit, std::memory_order_acquire,
											  std::memory_order_relaxed);
}

// Stores ids[from, n) into a list locked from word `seen`, then publishes count
// n with the next version, which unlocks it.
inline void
write_list_and_unlock(ListRef list, std::uint32_t seen, const std::uint32_t *ids, std::uint32_t from,
					  std::uint32_t n) noexcept
{
	for (std::uint32_t i = from; i < n; ++i)
		list.ids[i].store(ids[i], std::memory_order_release);
	const std::uint32_t version = (seen & ~(k_list_lock_bit | k_list_count_mask)) + k_list_version_step;
	list.word->store(version | n, std::memory_order_release);
}

inline std::uint64_t
pack_entry(std::uint32_t id, std::uint32_t level) noexcept
{
	return (std::uint64_t{level} << 32) | id;
}

inline std::uint32_t
entry_id(std::uint64_t entry) noexcept
{
	return static_cast<std::uint32_t>(entry);
}

inline std::uint32_t
entry_level(std::uint64_t entry) noexcept
{
	return static_cast<std::uint32_t>(entry >> 32);
}

} // namespace engram::core
