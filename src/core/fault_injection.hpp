// Fault injection: a runtime seam through which tests make rare failures
// happen on demand, in the code the extension runs (nothing is compiled
// differently for tests).
//
// A link allocates (its context's buffers grow with the graph) and can fail
// with std::bad_alloc half-way, after it has claimed its node, taken the top
// lock or connected some levels; such failures are rare in production and
// impossible to provoke reliably from outside. A test installs a hook that
// HnswGraph::link() calls at every level of every link, after choosing that
// level's neighbours and before connecting them; the hook throws to simulate
// the failure. Nothing installs a hook outside tests, and looking for one
// costs one atomic load per level linked.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/no_postgres.hpp"

namespace engram::core::fault {

// May throw; called with the node being linked and the level about to be connected.
using LinkLevelHook = void (*)(std::uint32_t id, std::uint32_t level);

inline std::atomic<LinkLevelHook> link_level_hook{nullptr};

// Installs (or with nullptr removes) the hook; returns the previous one.
inline LinkLevelHook
set_link_level_hook(LinkLevelHook hook) noexcept
{
	return link_level_hook.exchange(hook, std::memory_order_acq_rel);
}

inline void
at_link_level(std::uint32_t id, std::uint32_t level)
{
	if (const LinkLevelHook hook = link_level_hook.load(std::memory_order_acquire))
		hook(id, level);
}

} // namespace engram::core::fault
