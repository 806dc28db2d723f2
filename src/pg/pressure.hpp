// The pipeline's pressure right now, from shared counters and the settings.
#pragma once

#include <cstdint>

#include "core/pressure.hpp"

engram::core::PressureReport pressure_now(void);

// True when the indexes' memory (engram.memory_limit), not the ring, is what
// fills the pipeline: a space could not grow, or the arena is fuller than the
// backlog.
bool pressure_from_memory(void);

// Vectors stored in a graph but not linked yet, over every space, and the
// ring bytes their records took.
struct UnlinkedVectors {
	std::uint64_t count;
	std::uint64_t ring_bytes;
};
UnlinkedVectors unlinked_vectors(void);
