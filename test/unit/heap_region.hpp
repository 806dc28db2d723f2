// A heap-backed arena, which the unit tests use where the extension uses
// shared memory, and the random vectors several tests feed it.
#pragma once

#include "core/arena.hpp"

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace engram::core::test_support {

struct alignas(64) Line {
	std::byte b[64];
};

struct Region {
	explicit Region(std::size_t bytes) : lines(bytes / sizeof(Line)), arena(Arena::create(base(), bytes)) {}
	std::byte *base() { return reinterpret_cast<std::byte *>(lines.data()); }
	std::vector<Line> lines;
	Arena arena;
};

inline std::vector<float>
random_vectors(std::size_t n, std::uint32_t dim, std::uint32_t seed)
{
	std::mt19937 rng(seed);
	std::normal_distribution<float> normal;
	std::vector<float> v(n * dim);
	for (float &x : v)
		x = normal(rng);
	return v;
}

} // namespace engram::core::test_support
