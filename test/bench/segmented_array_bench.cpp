// The cost of SegmentedArray::at() on the search hot path: reads of random
// and of consecutive elements when every chunk sits in the header (any space
// below 224 chunks of about 32 MB) and when almost all of them are found
// through index blocks (a space past the header's chunks, imitated here with
// chunks of 256 elements). The element reads themselves dominate random
// access; what the index blocks add is one more load from a few kilobytes
// that stay in cache.
//
// Run: build/release/segmented_array_bench
#include <cstdint>
#include <memory>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/segmented_array.hpp"

namespace engram::core {
namespace {

struct alignas(64) Line {
	std::byte b[64];
};

constexpr std::uint64_t k_elements = std::uint64_t{1} << 20; // 64 MB of 64-byte elements

// An array of k_elements filled with their own index, with chunks capped at
// 2^max_chunk_log2 elements (0: the default of about 32 MB).
struct Filled {
	explicit Filled(std::uint32_t max_chunk_log2)
		: bytes(k_elements * 64 * 2 + (64 << 20)), memory(std::make_unique<Line[]>(bytes / sizeof(Line))),
		  arena(Arena::create(reinterpret_cast<std::byte *>(memory.get()), bytes)), array(arena, &header)
	{
		SegmentedArray::init(&header, 64, 4, max_chunk_log2);
		if (!array.ensure_capacity(k_elements))
			std::abort();
		for (std::uint64_t i = 0; i < k_elements; ++i)
			*array.at_as<std::uint64_t>(i) = i;
	}

	std::size_t bytes;
	std::unique_ptr<Line[]> memory;
	Arena arena;
	SegmentedArrayHeader header;
	SegmentedArray array;
};

void
random_reads(benchmark::State &state)
{
	Filled f(static_cast<std::uint32_t>(state.range(0)));
	std::vector<std::uint32_t> order(1 << 16);
	std::uint64_t x = 88172645463325252ULL;
	for (std::uint32_t &o : order) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		o = static_cast<std::uint32_t>(x % k_elements);
	}
	std::uint64_t sum = 0;
	for (auto _ : state)
		for (const std::uint32_t i : order)
			sum += *f.array.at_as<const std::uint64_t>(i);
	benchmark::DoNotOptimize(sum);
	state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * order.size()));
}

void
consecutive_reads(benchmark::State &state)
{
	Filled f(static_cast<std::uint32_t>(state.range(0)));
	std::uint64_t sum = 0;
	for (auto _ : state)
		for (std::uint64_t i = 0; i < k_elements; ++i)
			sum += *f.array.at_as<const std::uint64_t>(i);
	benchmark::DoNotOptimize(sum);
	state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * k_elements));
}

// max_chunk_log2 0: every chunk in the header; 8: 4096 chunks, 95% of them through index blocks.
BENCHMARK(random_reads)->Arg(0)->Arg(8)->ArgName("max_chunk_log2");
BENCHMARK(consecutive_reads)->Arg(0)->Arg(8)->ArgName("max_chunk_log2");

} // namespace
} // namespace engram::core

BENCHMARK_MAIN();
