// HnswContextPool: one SearchContext per thread of a oneTBB arena, for code
// that links or searches one graph from many threads (the worker's LinkPool).
//
// A thread's context is created on its first use and kept for later tasks,
// so their buffers are reused instead of grown again.
#pragma once

#include <cstddef>

#include <tbb/enumerable_thread_specific.h>

#include "core/hnsw_context.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

class HnswContextPool {
public:
	SearchContext &local() { return contexts_.local(); }
	std::size_t memory_bytes() const;
	// Threads that have taken a context (call when no thread is taking one).
	std::size_t threads() const { return contexts_.size(); }

private:
	tbb::enumerable_thread_specific<SearchContext> contexts_;
};

} // namespace engram::core
