// VectorStore: one space's stored observations, in arrival order, inside the
// shared Arena. Node i holds observation id, generation, confidence and the
// vector; the index (a later stage) links nodes by this same number.
//
// One writer at a time (the worker holding the ring's consumer token, or the
// loader); any number of readers in any process. The writer fills node i
// completely and then publishes count = i + 1 with a release store; readers
// acquire the count and never look past it. Vectors are stored with a stride
// rounded up to 64 bytes so every vector starts on a cache line.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <type_traits>

#include "core/arena.hpp"
#include "core/segmented_array.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

struct NodeMeta {
	std::int64_t observation_id;
	std::uint64_t generation;
	float confidence;
	std::uint32_t flags;
	std::uint64_t unused;
};
static_assert(sizeof(NodeMeta) == 32);

struct VectorStoreHeader {
	std::uint32_t dim;
	std::uint32_t unused;
	std::atomic<std::uint64_t> count;
	SegmentedArrayHeader meta;
	SegmentedArrayHeader vectors;
};
static_assert(std::is_standard_layout_v<VectorStoreHeader>);

class VectorStore {
public:
	VectorStore(Arena arena, VectorStoreHeader *header) noexcept
		: header_(header), meta_(arena, &header->meta), vectors_(arena, &header->vectors)
	{
	}

	static void init(VectorStoreHeader *header, std::uint32_t dim) noexcept;

	std::uint32_t dim() const noexcept { return header_->dim; }
	std::uint64_t size() const noexcept { return header_->count.load(std::memory_order_acquire); }

	// Writer: makes room for `more` nodes beyond size(); false if the arena is
	// exhausted, in which case nothing was appended.
	bool reserve(std::uint64_t more) noexcept;
	// Writer: appends one node; reserve() must have made room for it.
	void append(std::int64_t observation_id, std::uint64_t generation, float confidence,
				std::span<const float> vector) noexcept;
	// Writer: forgets every node (memory stays with the store for reuse).
	void clear() noexcept { header_->count.store(0, std::memory_order_release); }
	// Writer: gives all memory back to the arena; no reader may remain.
	void release() noexcept;

	const NodeMeta &meta(std::uint64_t node) const noexcept { return *meta_.at_as<NodeMeta>(node); }
	std::span<const float> vector(std::uint64_t node) const noexcept
	{
		return {vectors_.at_as<const float>(node), header_->dim};
	}
	std::size_t memory_bytes() const noexcept { return meta_.allocated_bytes() + vectors_.allocated_bytes(); }

private:
	VectorStoreHeader *header_;
	SegmentedArray meta_;
	SegmentedArray vectors_;
};

} // namespace engram::core
