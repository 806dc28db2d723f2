// Graph layout, attachment and the store step (append), plus the small
// accessors. Linking lives in hnsw_insert.cpp, searching in hnsw_search.cpp
// and hnsw_exact.cpp.
//
// Append protocol: appends are serialised by the header's append_lock (a spin
// lock held while a batch is encoded and written, never while waiting on
// anything else). Under it the appender grows the arrays and the label table,
// constructs each node's head and empty lists, stores its tokens, encodes its
// vector, indexes its label, raises max_generation and finally releases
// `count`. Readers never look at an id at or above the count they acquired,
// so they never see a node under construction. Every allocation is made
// before the first node is written, so a failed append leaves nothing behind.
//
// Forgetting writes one word per node (NodeHead::forgotten, from
// k_never_forgotten to a generation, once) and then the header's counters,
// which searches read to decide whether they may skip per-node checks.
#include "core/hnsw_graph.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>

#include "core/hnsw_context.hpp"
#include "core/quantize.hpp"

namespace engram::core {

namespace {

constexpr std::uint32_t
round_up_64(std::size_t bytes) noexcept
{
	return static_cast<std::uint32_t>((bytes + 63) & ~std::size_t{63});
}

// Float32 vectors start on a cache line. A quantized vector is there to save
// memory, so it starts on 16 bytes only: a 768-d sq8 vector (776 bytes) then
// takes 784 bytes rather than 832, the difference between a million of them
// (graph included) fitting engram.memory_limit = '1GB' or not; its loads are
// unaligned anyway, and prefetching covers the line it straddles.
constexpr std::uint32_t
vector_stride_for(Encoding encoding, std::size_t bytes) noexcept
{
	return encoding == Encoding::float32 ? round_up_64(bytes)
										 : static_cast<std::uint32_t>((bytes + 15) & ~std::size_t{15});
}

std::uint64_t
mix64(std::uint64_t x) noexcept
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void
construct_list(std::byte *at, std::uint32_t capacity) noexcept
{
	for (std::uint32_t i = 0; i <= capacity; ++i)
		new (at + 4 * std::size_t{i}) std::atomic<std::uint32_t>(0);
}

bool
valid_enums(const HnswConfig &c) noexcept
{
	const auto metric = static_cast<std::uint8_t>(c.metric);
	const auto encoding = static_cast<std::uint8_t>(c.encoding);
	return metric <= static_cast<std::uint8_t>(Metric::cosine) && encoding < k_encoding_count;
}

} // namespace

const char *
to_string(HnswStatus status) noexcept
{
	switch (status) {
	case HnswStatus::ok:
		return "ok";
	case HnswStatus::invalid_config:
		return "invalid graph configuration";
	case HnswStatus::invalid_header:
		return "no graph of this layout version at this offset";
	case HnswStatus::dimension_mismatch:
		return "vector has the wrong number of dimensions";
	case HnswStatus::invalid_vector:
		return "vector has a non-finite component or zero length";
	case HnswStatus::out_of_memory:
		return "graph memory exhausted";
	case HnswStatus::too_many_nodes:
		return "too many nodes for 32-bit node ids";
	case HnswStatus::unknown_node:
		return "no such node";
	case HnswStatus::interrupted:
		return "search interrupted";
	case HnswStatus::too_many_tokens:
		return "too many attribute tokens for one node";
	}
	return "unknown status";
}

HnswStatus
HnswGraph::create(Arena arena, const HnswConfig &config, std::uint64_t &header_offset) noexcept
{
	if (config.dim == 0 || config.dim > k_hnsw_max_dim || config.m < 2 || config.m > k_hnsw_max_m ||
		config.ef_construction == 0 || config.first_chunk_log2 > 24 || config.max_chunk_log2 > 24 ||
		(config.max_chunk_log2 != 0 && config.max_chunk_log2 < config.first_chunk_log2) || !valid_enums(config))
		return HnswStatus::invalid_config;
	const std::uint64_t offset = arena.allocate(sizeof(HnswHeader));
	if (offset == 0)
		return HnswStatus::out_of_memory;
	auto *h = new (arena.at<std::byte>(offset)) HnswHeader{};
	h->layout_version = k_hnsw_layout_version;
	h->dim = config.dim;
	h->metric = config.metric;
	h->encoding = config.encoding;
	h->m = static_cast<std::uint8_t>(config.m);
	h->m0 = static_cast<std::uint8_t>(2 * config.m);
	h->ef_construction = config.ef_construction;
	h->node_stride = round_up_64(sizeof(NodeHead) + 4 + 4 * std::size_t{h->m0});
	h->vector_bytes = static_cast<std::uint32_t>(encoded_bytes(config.encoding, config.dim));
	h->vector_stride = vector_stride_for(config.encoding, h->vector_bytes);
	h->upper_stride = round_up_64(4 + 4 * std::size_t{h->m});
	h->level_multiplier = 1.0 / std::log(static_cast<double>(config.m));
	h->seed = config.seed;
	h->entry.store(k_no_entry, std::memory_order_relaxed);
	h->lowest_confidence.store(std::numeric_limits<float>::infinity(), std::memory_order_relaxed);
	h->lowest_forgotten.store(k_never_forgotten, std::memory_order_relaxed);
	SegmentedArray::init(&h->nodes, h->node_stride, config.first_chunk_log2, config.max_chunk_log2);
	SegmentedArray::init(&h->vectors, h->vector_stride, config.first_chunk_log2, config.max_chunk_log2);
	// About one node in m - 1 has an upper level, so the upper array starts smaller.
	SegmentedArray::init(&h->upper, h->upper_stride, config.first_chunk_log2 > 4 ? config.first_chunk_log2 - 4 : 0,
						 config.max_chunk_log2);
	SegmentedArray::init(&h->attrs, sizeof(NodeAttrs), config.first_chunk_log2, config.max_chunk_log2);
	// Every tokens chunk holds a whole run of k_max_node_tokens.
	const std::uint32_t tokens_first = std::max(config.first_chunk_log2, k_tokens_min_chunk_log2);
	SegmentedArray::init(&h->tokens, sizeof(std::uint64_t), tokens_first,
						 config.max_chunk_log2 == 0 ? 0 : std::max(config.max_chunk_log2, tokens_first));
	h->magic = k_hnsw_magic;
	header_offset = offset;
	return HnswStatus::ok;
}

HnswStatus
HnswGraph::check(Arena arena, std::uint64_t header_offset) noexcept
{
	if (header_offset == 0 || header_offset % 64 != 0 || header_offset + sizeof(HnswHeader) > arena.region_bytes())
		return HnswStatus::invalid_header;
	const auto *h = arena.at<const HnswHeader>(header_offset);
	if (h->magic != k_hnsw_magic || h->layout_version != k_hnsw_layout_version)
		return HnswStatus::invalid_header;
	if (h->dim == 0 || h->dim > k_hnsw_max_dim || h->m < 2 || h->m > k_hnsw_max_m || h->m0 != 2 * h->m ||
		static_cast<std::uint8_t>(h->metric) > static_cast<std::uint8_t>(Metric::cosine) ||
		static_cast<std::uint8_t>(h->encoding) >= k_encoding_count)
		return HnswStatus::invalid_header;
	return HnswStatus::ok;
}

HnswGraph::HnswGraph(Arena arena, std::uint64_t header_offset) noexcept
	: arena_(arena), header_offset_(header_offset), header_(arena.at<HnswHeader>(header_offset)),
	  nodes_(arena, &header_->nodes), vectors_(arena, &header_->vectors), upper_(arena, &header_->upper),
	  attrs_(arena, &header_->attrs), tokens_(arena, &header_->tokens),
	  distance_(distance_kernels().get(header_->metric, header_->encoding)),
	  float32_distance_(distance_kernels().get(header_->metric, Encoding::float32)),
	  pair_distance_(header_->encoding == Encoding::sq8 ? distance_kernels().sq8_pair(header_->metric) : nullptr),
	  prefetch_lines_(std::min<std::uint32_t>(8,
											  (header_->vector_bytes + 63) / 64 + (header_->vector_stride % 64 != 0)))
{
}

HnswStatus
HnswGraph::reserve(std::uint64_t nodes, std::uint64_t tokens) noexcept
{
	if (nodes > k_max_nodes)
		return HnswStatus::too_many_nodes;
	// Levels are a hash of the id, so the upper blocks the next appends need
	// are known now: after a successful reserve, appends up to `nodes` cannot
	// run out of memory (while no one else appends in between).
	const std::uint64_t stored = size();
	std::uint64_t upper = header_->upper_used.load(std::memory_order_relaxed);
	for (std::uint64_t id = stored; id < nodes; ++id)
		upper += level_of(id);
	const std::uint64_t used = token_slots();
	if (!nodes_.ensure_capacity(nodes) || !vectors_.ensure_capacity(nodes) || !upper_.ensure_capacity(upper) ||
		!attrs_.ensure_capacity(nodes) ||
		!tokens_.ensure_capacity(tokens > used ? token_slots_needed(used, tokens - used) : 0))
		return HnswStatus::out_of_memory;
	SpinLockGuard append_lock(header_->append_lock);
	if (!reserve_labels(nodes > stored ? nodes - stored : 0))
		return HnswStatus::out_of_memory;
	return HnswStatus::ok;
}

std::uint64_t
HnswGraph::token_slots_needed(std::uint64_t used, std::uint64_t tokens) const noexcept
{
	// A run that would cross a chunk end starts at the next chunk, so a chunk
	// with r free slots takes at least r - (k_max_node_tokens - 1) of them
	// before the rest move on: an upper bound whatever the runs' sizes.
	std::uint64_t position = used;
	while (tokens > 0) {
		const std::uint64_t room = tokens_.chunk_end(position) - position;
		if (tokens <= room)
			return position + tokens;
		tokens -= room >= k_max_node_tokens ? room - (k_max_node_tokens - 1) : 0;
		position += room;
	}
	return position;
}

void
HnswGraph::store_tokens(std::uint32_t id, std::span<const std::uint64_t> tokens, std::uint64_t &used) noexcept
{
	NodeAttrs attrs{used, 0, 0};
	if (!tokens.empty()) {
		// Sorted and made unique in place, so an append needs no scratch memory.
		attrs.first = tokens_.run_start(used, tokens.size());
		auto *run = tokens_.at_as<std::uint64_t>(attrs.first);
		std::copy(tokens.begin(), tokens.end(), run);
		std::sort(run, run + tokens.size());
		attrs.count = static_cast<std::uint32_t>(std::unique(run, run + tokens.size()) - run);
		for (std::uint32_t i = 0; i < attrs.count; ++i)
			attrs.bloom |= token_bloom(run[i]);
		used = attrs.first + attrs.count;
	}
	new (attrs_.at(id)) NodeAttrs(attrs);
}

std::span<const std::uint64_t>
HnswGraph::tokens(std::uint32_t id) const noexcept
{
	const NodeAttrs &a = attrs(id);
	if (a.count == 0)
		return {};
	return {tokens_.at_as<const std::uint64_t>(a.first), a.count};
}

std::uint32_t
HnswGraph::level_of(std::uint64_t id) const noexcept
{
	// A stateless hash of (seed, id) in place of a shared random generator:
	// the level of a node is fixed before any thread links it, identical for
	// every thread and every rebuild, and needs no synchronisation.
	const std::uint64_t bits = mix64(header_->seed ^ mix64(id));
	const double u = (static_cast<double>(bits >> 11) + 1.0) * 0x1p-53; // (0, 1]
	const double level = std::floor(-std::log(u) * header_->level_multiplier);
	return static_cast<std::uint32_t>(std::min(level, static_cast<double>(k_max_level)));
}

HnswStatus
HnswGraph::validate(std::span<const float> vector) const noexcept
{
	if (vector.size() != header_->dim)
		return HnswStatus::dimension_mismatch;
	if (!all_finite(vector))
		return HnswStatus::invalid_vector;
	if (header_->metric == Metric::cosine) {
		double sum = 0.0;
		for (float x : vector)
			sum += static_cast<double>(x) * x;
		if (!(sum > 0.0) || !std::isfinite(sum))
			return HnswStatus::invalid_vector;
	}
	return HnswStatus::ok;
}

HnswStatus
HnswGraph::append(std::span<const float> vector, std::uint64_t generation, std::uint32_t &id) noexcept
{
	return append_nodes(vector, 1, nullptr, &generation, id);
}

HnswStatus
HnswGraph::append(std::span<const float> vector, const NodeData &data, std::uint32_t &id) noexcept
{
	return append_nodes(vector, 1, &data, nullptr, id);
}

HnswStatus
HnswGraph::append_batch(std::span<const float> vectors, std::span<const NodeData> data, std::uint32_t &first) noexcept
{
	return append_nodes(vectors, data.size(), data.data(), nullptr, first);
}

HnswStatus
HnswGraph::append_batch(std::span<const float> vectors, std::span<const std::uint64_t> generations,
						std::uint32_t &first) noexcept
{
	return append_nodes(vectors, generations.size(), nullptr, generations.data(), first);
}

HnswStatus
HnswGraph::append_nodes(std::span<const float> vectors, std::size_t n, const NodeData *data,
						const std::uint64_t *generations, std::uint32_t &first) noexcept
{
	HnswHeader &h = *header_;
	if (vectors.size() != n * h.dim)
		return HnswStatus::dimension_mismatch;
	std::uint64_t tokens_needed = 0;
	for (std::size_t i = 0; i < n; ++i) {
		const HnswStatus s = validate(vectors.subspan(i * h.dim, h.dim));
		if (s != HnswStatus::ok)
			return s;
		if (data != nullptr && data[i].tokens.size() > k_max_node_tokens)
			return HnswStatus::too_many_tokens;
		tokens_needed += data != nullptr ? data[i].tokens.size() : 0;
	}
	SpinLockGuard append_lock(h.append_lock);
	const std::uint64_t start = h.count.load(std::memory_order_relaxed);
	HnswStatus status = HnswStatus::ok;
	std::uint64_t upper = h.upper_used.load(std::memory_order_relaxed);
	std::uint64_t upper_needed = 0;
	for (std::size_t i = 0; i < n; ++i)
		upper_needed += level_of(start + i);
	std::uint64_t tokens_used = h.tokens_used.load(std::memory_order_relaxed);
	if (start + n > k_max_nodes || upper + upper_needed > 0xFFFFFFFFu)
		status = HnswStatus::too_many_nodes;
	else if (!nodes_.ensure_capacity(start + n) || !vectors_.ensure_capacity(start + n) ||
			 !upper_.ensure_capacity(upper + upper_needed) || !attrs_.ensure_capacity(start + n) ||
			 !tokens_.ensure_capacity(token_slots_needed(tokens_used, tokens_needed)) || !reserve_labels(n))
		status = HnswStatus::out_of_memory;
	if (status != HnswStatus::ok)
		return status;
	std::uint64_t max_generation = h.max_generation.load(std::memory_order_relaxed);
	float lowest_confidence = h.lowest_confidence.load(std::memory_order_relaxed);
	for (std::size_t i = 0; i < n; ++i) {
		const auto id = static_cast<std::uint32_t>(start + i);
		const NodeData d = data != nullptr ? data[i] : NodeData{generations[i], static_cast<std::int64_t>(id)};
		construct_node(id, d, level_of(id), upper, tokens_used);
		const std::span<const float> v = vectors.subspan(i * h.dim, h.dim);
		encode(h.encoding, v, vectors_.at(id), h.metric == Metric::cosine ? unit_scale(v) : 1.0f);
		max_generation = std::max(max_generation, d.generation);
		lowest_confidence = std::min(lowest_confidence, d.confidence);
	}
	h.upper_used.store(upper, std::memory_order_relaxed);
	h.tokens_used.store(tokens_used, std::memory_order_release);
	h.max_generation.store(max_generation, std::memory_order_release);
	h.lowest_confidence.store(lowest_confidence, std::memory_order_release);
	h.count.store(start + n, std::memory_order_release);
	append_lock.unlock();
	first = static_cast<std::uint32_t>(start);
	return HnswStatus::ok;
}

void
HnswGraph::construct_node(std::uint32_t id, const NodeData &d, std::uint32_t level, std::uint64_t &upper,
						  std::uint64_t &tokens_used) noexcept
{
	const HnswHeader &h = *header_;
	auto *node = new (nodes_.at(id)) NodeHead{};
	node->parent.store(k_no_node, std::memory_order_relaxed);
	node->generation = d.generation;
	node->label = d.label;
	node->confidence = d.confidence;
	node->forgotten.store(k_never_forgotten, std::memory_order_relaxed);
	node->observed_at = d.observed_at;
	store_tokens(id, d.tokens, tokens_used);
	index_label(d.label, id);
	node->upper = level > 0 ? static_cast<std::uint32_t>(upper) : 0;
	node->level = static_cast<std::uint8_t>(level);
	construct_list(nodes_.at(id) + sizeof(NodeHead), h.m0);
	for (std::uint32_t l = 0; l < level; ++l)
		construct_list(upper_.at(upper + l), h.m);
	upper += level;
}

HnswStatus
HnswGraph::append_stored(std::span<const std::byte> encoded, const NodeData &data, std::uint32_t level,
						 std::uint32_t &id) noexcept
{
	HnswHeader &h = *header_;
	if (encoded.size() != h.vector_bytes || level > k_max_level)
		return HnswStatus::invalid_vector;
	if (data.tokens.size() > k_max_node_tokens)
		return HnswStatus::too_many_tokens;
	SpinLockGuard append_lock(h.append_lock);
	const std::uint64_t stored = h.count.load(std::memory_order_relaxed);
	std::uint64_t upper = h.upper_used.load(std::memory_order_relaxed);
	std::uint64_t tokens_used = h.tokens_used.load(std::memory_order_relaxed);
	if (stored + 1 > k_max_nodes || upper + level > 0xFFFFFFFFu)
		return HnswStatus::too_many_nodes;
	if (!nodes_.ensure_capacity(stored + 1) || !vectors_.ensure_capacity(stored + 1) ||
		!upper_.ensure_capacity(upper + level) || !attrs_.ensure_capacity(stored + 1) ||
		!tokens_.ensure_capacity(token_slots_needed(tokens_used, data.tokens.size())) || !reserve_labels(1))
		return HnswStatus::out_of_memory;
	const auto node = static_cast<std::uint32_t>(stored);
	construct_node(node, data, level, upper, tokens_used);
	std::memcpy(vectors_.at(node), encoded.data(), encoded.size());
	h.upper_used.store(upper, std::memory_order_relaxed);
	h.tokens_used.store(tokens_used, std::memory_order_release);
	h.max_generation.store(std::max(h.max_generation.load(std::memory_order_relaxed), data.generation),
						   std::memory_order_release);
	h.lowest_confidence.store(std::min(h.lowest_confidence.load(std::memory_order_relaxed), data.confidence),
							  std::memory_order_release);
	h.count.store(stored + 1, std::memory_order_release);
	id = node;
	return HnswStatus::ok;
}

std::uint32_t
HnswGraph::claim_unlinked(std::uint32_t max, std::uint32_t &first) noexcept
{
	const std::uint64_t stored = size();
	std::uint64_t cursor = header_->link_cursor.load(std::memory_order_relaxed);
	for (;;) {
		if (cursor >= stored || max == 0)
			return 0;
		const std::uint64_t end = std::min<std::uint64_t>(stored, cursor + max);
		if (header_->link_cursor.compare_exchange_weak(cursor, end, std::memory_order_acq_rel)) {
			first = static_cast<std::uint32_t>(cursor);
			return static_cast<std::uint32_t>(end - cursor);
		}
	}
}

HnswStatus
HnswGraph::insert(std::span<const float> vector, std::uint64_t generation, SearchContext &context, std::uint32_t *id)
{
	std::uint32_t node;
	const HnswStatus status = append(vector, generation, node);
	if (status != HnswStatus::ok)
		return status;
	link(node, context);
	if (id != nullptr)
		*id = node;
	return HnswStatus::ok;
}

bool
HnswGraph::is_linked(std::uint32_t id) const noexcept
{
	return (head(id).flags.load(std::memory_order_acquire) & k_node_linked) != 0;
}

std::uint32_t
HnswGraph::neighbors(std::uint32_t id, std::uint32_t level, std::span<std::uint32_t> out) const noexcept
{
	if (level > head(id).level || out.size() < (level == 0 ? header_->m0 : header_->m))
		return 0;
	return list_count(read_list(list(id, level), out.data()));
}

void
HnswGraph::stored_vector(std::uint32_t id, std::span<float> out) const noexcept
{
	decode(header_->encoding, vector_bytes(id), out.first(header_->dim));
}

std::uint32_t
HnswGraph::entry_point() const noexcept
{
	const std::uint64_t entry = header_->entry.load(std::memory_order_acquire);
	return entry == k_no_entry ? k_no_node : entry_id(entry);
}

std::uint32_t
HnswGraph::max_level() const noexcept
{
	const std::uint64_t entry = header_->entry.load(std::memory_order_acquire);
	return entry == k_no_entry ? 0 : entry_level(entry);
}

std::size_t
HnswGraph::memory_bytes() const noexcept
{
	const std::uint64_t label_slots = header_->label_capacity.load(std::memory_order_relaxed);
	return Arena::rounded(sizeof(HnswHeader)) + nodes_.allocated_bytes() + vectors_.allocated_bytes() +
		   upper_.allocated_bytes() + attrs_.allocated_bytes() + tokens_.allocated_bytes() +
		   (label_slots == 0 ? 0 : Arena::rounded(label_slots * sizeof(LabelSlot)));
}

std::size_t
HnswGraph::used_bytes() const noexcept
{
	const HnswHeader &h = *header_;
	return Arena::rounded(sizeof(HnswHeader)) +
		   size() * (std::size_t{h.node_stride} + h.vector_stride + sizeof(NodeAttrs)) +
		   h.upper_used.load(std::memory_order_acquire) * h.upper_stride +
		   h.label_used.load(std::memory_order_relaxed) * 2 * sizeof(LabelSlot) + // the table stays at most half full
		   h.tokens_used.load(std::memory_order_acquire) * sizeof(std::uint64_t);
}

void
HnswGraph::destroy() noexcept
{
	nodes_.release_all();
	vectors_.release_all();
	upper_.release_all();
	attrs_.release_all();
	tokens_.release_all();
	release_labels();
	header_->magic = 0;
	arena_.release(header_offset_, sizeof(HnswHeader));
}

const float *
HnswGraph::prepare_query(std::span<const float> query, SearchContext &context) const
{
	if (header_->metric != Metric::cosine)
		return query.data();
	context.query_.resize(header_->dim);
	normalize(query, context.query_);
	return context.query_.data();
}

} // namespace engram::core
