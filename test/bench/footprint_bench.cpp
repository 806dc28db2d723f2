// What a space of one million 768-d vectors takes of engram's shared memory
// in each storage encoding, graph included (issue 12's goal: a 1 M x 768-d
// sq8 space in at most 1.0 GB).
//
// A node's link lists (level 0 and its upper levels), its attributes and its
// label slot are all allocated when it is stored, so appending the vectors
// without linking them measures exactly what the linked space holds; it
// takes seconds where linking a million 768-d vectors on this machine takes
// the better part of an hour. The graph is the extension's (m 16, first
// chunks of 16 nodes, engram.memory_limit's allocator); each vector has a
// label, as each observation has its id.
//
// The sq8 space is built in an arena of exactly 1 GiB, what
// engram.memory_limit = '1GB' gives (PostgreSQL's units are binary): it fails
// if the space does not fit. Counters: bytes per vector (held/vector: every
// byte the graph holds of the arena, chunk slack included), the total in GB
// (10^9 bytes) and GiB, and the encoded vector's own bytes.
//
// Run: build/release/footprint_bench --benchmark_counters_tabular=true
//      (ENGRAM_FOOTPRINT_ROWS changes the million)
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/hnsw_graph.hpp"

namespace engram::core {
namespace {

constexpr std::uint32_t k_dim = 768;
constexpr std::uint32_t k_batch = 10000;

struct alignas(64) Line {
	std::byte b[64];
};

std::uint64_t
rows()
{
	const char *env = std::getenv("ENGRAM_FOOTPRINT_ROWS");
	return env != nullptr ? std::strtoull(env, nullptr, 10) : 1000000;
}

void
BM_Footprint(benchmark::State &state)
{
	const auto encoding = static_cast<Encoding>(state.range(0));
	const std::uint64_t n = rows();
	for (auto _ : state) {
		const std::size_t bytes = encoding == Encoding::sq8 && n == 1000000
									  ? std::size_t{1} << 30
									  : n * (4 * std::size_t{k_dim} + 512) + (std::size_t{64} << 20);
		std::vector<Line> memory(bytes / sizeof(Line));
		const Arena arena = Arena::create(reinterpret_cast<std::byte *>(memory.data()), bytes);
		HnswConfig config;
		config.dim = k_dim;
		config.metric = Metric::cosine;
		config.encoding = encoding;
		config.m = 16;
		config.ef_construction = 200;
		config.first_chunk_log2 = 4; // as directory_config() makes a space's graph
		std::uint64_t offset = 0;
		if (HnswGraph::create(arena, config, offset) != HnswStatus::ok) {
			state.SkipWithError("could not create the graph");
			return;
		}
		HnswGraph graph(arena, offset);
		std::mt19937 rng(768);
		std::normal_distribution<float> normal;
		std::vector<float> vectors(std::size_t{k_batch} * k_dim);
		std::vector<NodeData> data(k_batch);
		for (std::uint64_t done = 0; done < n; done += k_batch) {
			const auto batch = static_cast<std::uint32_t>(std::min<std::uint64_t>(k_batch, n - done));
			for (float &x : vectors)
				x = normal(rng);
			for (std::uint32_t i = 0; i < batch; ++i)
				data[i] = NodeData{1, static_cast<std::int64_t>(done + i), 0.7f, 0, {}};
			std::uint32_t first = 0;
			if (graph.append_batch(std::span<const float>(vectors.data(), std::size_t{batch} * k_dim),
								   std::span<const NodeData>(data.data(), batch), first) != HnswStatus::ok) {
				state.SkipWithError("the arena is full");
				return;
			}
		}
		const double held = static_cast<double>(graph.memory_bytes());
		state.counters["held/vector"] = held / static_cast<double>(n);
		state.counters["vector_bytes"] = static_cast<double>(encoded_bytes(encoding, k_dim));
		state.counters["GB"] = held / 1e9;
		state.counters["GiB"] = held / static_cast<double>(std::size_t{1} << 30);
	}
	state.SetLabel(encoding == Encoding::float32 ? "f32" : encoding == Encoding::float16 ? "f16" : "sq8");
}
BENCHMARK(BM_Footprint)
	->Arg(static_cast<int>(Encoding::float32))
	->Arg(static_cast<int>(Encoding::float16))
	->Arg(static_cast<int>(Encoding::sq8))
	->Iterations(1)
	->Unit(benchmark::kSecond);

} // namespace
} // namespace engram::core

BENCHMARK_MAIN();
