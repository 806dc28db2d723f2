#include "core/vector_store.hpp"

#include <algorithm>
#include <cstring>

namespace engram::core {

namespace {
// Chunk 0 of each array holds 256 nodes; later chunks double.
constexpr std::uint32_t k_first_chunk_log2 = 8;
} // namespace

void
VectorStore::init(VectorStoreHeader *header, std::uint32_t dim) noexcept
{
	header->dim = dim;
	header->count.store(0, std::memory_order_relaxed);
	SegmentedArray::init(&header->meta, sizeof(NodeMeta), k_first_chunk_log2);
	const std::uint32_t stride = (dim * sizeof(float) + 63) & ~std::uint32_t{63};
	SegmentedArray::init(&header->vectors, stride, k_first_chunk_log2);
}

bool
VectorStore::reserve(std::uint64_t more) noexcept
{
	const std::uint64_t need = size() + more;
	return meta_.ensure_capacity(need) && vectors_.ensure_capacity(need);
}

void
VectorStore::append(std::int64_t observation_id, std::uint64_t generation, float confidence,
					std::span<const float> vector) noexcept
{
	const std::uint64_t node = header_->count.load(std::memory_order_relaxed);
	*meta_.at_as<NodeMeta>(node) = NodeMeta{observation_id, generation, confidence, 0, 0};
	std::memcpy(vectors_.at(node), vector.data(), std::min<std::size_t>(vector.size(), header_->dim) * sizeof(float));
	header_->count.store(node + 1, std::memory_order_release);
}

void
VectorStore::release() noexcept
{
	header_->count.store(0, std::memory_order_release);
	meta_.release_all();
	vectors_.release_all();
}

} // namespace engram::core
