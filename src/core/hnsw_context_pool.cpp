// The memory of a context pool: the sum over the contexts its threads created.
#include "core/hnsw_context_pool.hpp"

namespace engram::core {

std::size_t
HnswContextPool::memory_bytes() const
{
	std::size_t total = 0;
	for (const SearchContext &c : contexts_)
		total += c.memory_bytes();
	return total;
}

} // namespace engram::core
