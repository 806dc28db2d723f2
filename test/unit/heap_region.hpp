// A heap-backed arena, which the unit tests use where the extension uses
// shared memory; an anonymous shared mapping for tests that fork; and the
// random vectors several tests feed them.
#pragma once

#include "core/arena.hpp"

#include <sys/mman.h>

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

// Memory that forked children share with the test process.
struct SharedRegion {
	explicit SharedRegion(std::size_t bytes) : size(bytes)
	{
		void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		base = p == MAP_FAILED ? nullptr : static_cast<std::byte *>(p);
	}
	~SharedRegion()
	{
		if (base)
			munmap(base, size);
	}
	SharedRegion(const SharedRegion &) = delete;
	SharedRegion &operator=(const SharedRegion &) = delete;
	std::byte *base;
	std::size_t size;
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
