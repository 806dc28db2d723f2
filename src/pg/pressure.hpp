// The pipeline's pressure right now, from shared counters and the settings.
#pragma once

#include <cstdint>

#include "core/pressure.hpp"

// memory_bound, if given, is set when the indexes' memory (engram.memory_limit)
// rather than the backlog is what fills the pipeline: a space could not grow,
// or the arena is fuller than the backlog.
engram::core::PressureReport pressure_now(bool *memory_bound = nullptr);

// Vectors stored in a graph but not linked yet, over every space, and the
// ring bytes their records took.
struct UnlinkedVectors {
	std::uint64_t count;
	std::uint64_t ring_bytes;
};
UnlinkedVectors unlinked_vectors(void);
