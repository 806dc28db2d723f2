// What compaction and erasure cost.
//
//   compact/removed:P   compaction (hnsw_compact.hpp) of glove100 (100,000
//                       cosine vectors, m 16, ef_construction 200, the space
//                       defaults) with P % of the nodes forgotten at random;
//                       counters: lists repaired, tree nodes reattached,
//                       memory before and after
//   destroy/1M x 128    destroy() of a graph of 1,000,000 float32 vectors of
//                       128 dimensions (unlinked: only the bytes matter),
//                       which overwrites every byte it gives back to the arena;
//                       counter: bytes per second
//
// The glove100 graph is built once per process on every core (a parallel
// build: its graph differs slightly from run to run); forgetting is by
// generation, 10 % of the nodes at one and 40 % more at a later one, so the
// horizon picks the share without rebuilding.
//
// Run: build/release/compact_bench --benchmark_counters_tabular=true
#include <algorithm>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <tbb/task_arena.h>

#include "core/hnsw_compact.hpp"
#include "support/fvecs.hpp"
#include "support/hnsw_batch.hpp"

namespace engram::core {
namespace {

struct alignas(64) Line {
	std::byte b[64];
};

// A heap buffer an arena lays itself out over.
struct Region {
	explicit Region(std::size_t bytes) : lines(bytes / sizeof(Line))
	{
		arena = Arena::create(reinterpret_cast<std::byte *>(lines.data()), bytes);
	}
	std::vector<Line> lines;
	Arena arena{nullptr};
};

constexpr std::uint64_t k_first_forgetting = 2;  // 10 % forgotten at it
constexpr std::uint64_t k_second_forgetting = 3; // 40 % more at it

// glove100 linked into one graph, with the forgetting above applied.
class Glove {
public:
	static Glove *get()
	{
		static std::unique_ptr<Glove> glove = [] {
			auto g = std::make_unique<Glove>();
			return g->load() ? std::move(g) : nullptr;
		}();
		return glove.get();
	}

	bool load()
	{
		Dataset data;
		const std::string error = load_dataset(ENGRAM_DATA_DIR, "glove100", data);
		if (!error.empty()) {
			std::fprintf(stderr, "%s\n", error.c_str());
			return false;
		}
		const std::size_t n = data.base.rows();
		region = std::make_unique<Region>(std::size_t{3} * n * (192 + 448) + (64u << 20));
		HnswConfig config;
		config.dim = data.base.dim;
		config.metric = Metric::cosine;
		config.m = 16;
		config.ef_construction = 200;
		std::uint64_t offset = 0;
		if (HnswGraph::create(region->arena, config, offset) != HnswStatus::ok)
			return false;
		graph = std::make_unique<HnswGraph>(region->arena, offset);
		const std::vector<std::uint64_t> generations(n, 1);
		HnswContextPool pool;
		tbb::task_arena workers(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
		HnswStatus status = HnswStatus::ok;
		workers.execute([&] { status = insert_batch(*graph, data.base.values, generations, pool); });
		if (status != HnswStatus::ok)
			return false;
		std::vector<std::uint32_t> ids(n);
		std::iota(ids.begin(), ids.end(), 0u);
		std::shuffle(ids.begin(), ids.end(), std::mt19937(20240611));
		for (std::size_t i = 0; i < n / 2; ++i)
			graph->forget_node(ids[i], i < n / 10 ? k_first_forgetting : k_second_forgetting);
		return true;
	}

	std::unique_ptr<Region> region;
	std::unique_ptr<HnswGraph> graph;
};

void
compact_glove(benchmark::State &state)
{
	Glove *glove = Glove::get();
	if (glove == nullptr) {
		state.SkipWithError("glove100 is not available");
		return;
	}
	const std::uint64_t horizon = state.range(0) == 10 ? k_first_forgetting : k_second_forgetting;
	CompactionStats stats;
	for (auto _ : state) {
		std::uint64_t offset = 0;
		if (compact(*glove->graph, horizon, offset, &stats) != HnswStatus::ok) {
			state.SkipWithError("compaction failed");
			return;
		}
		state.PauseTiming();
		HnswGraph(glove->region->arena, offset).destroy();
		state.ResumeTiming();
	}
	state.counters["removed"] = static_cast<double>(stats.removed);
	state.counters["repaired_lists"] = static_cast<double>(stats.repaired_lists);
	state.counters["reattached"] = static_cast<double>(stats.reattached);
	state.counters["MB_before"] = static_cast<double>(stats.bytes_before) / 1e6;
	state.counters["MB_after"] = static_cast<double>(stats.bytes_after) / 1e6;
	state.counters["nodes/s"] =
		benchmark::Counter(static_cast<double>(stats.kept + stats.removed) * static_cast<double>(state.iterations()),
						   benchmark::Counter::kIsRate);
}
BENCHMARK(compact_glove)->Name("compact/glove100/removed")->Arg(10)->Arg(50)->Unit(benchmark::kMillisecond);

void
destroy_graph(benchmark::State &state)
{
	constexpr std::uint32_t dim = 128;
	const auto n = static_cast<std::uint32_t>(state.range(0));
	Region region(std::size_t{n} * (192 + 512) + (256u << 20));
	std::vector<float> vectors(std::size_t{n} * dim);
	std::mt19937 rng(7);
	std::normal_distribution<float> normal;
	for (float &x : vectors)
		x = normal(rng);
	const std::vector<std::uint64_t> generations(n, 1);
	std::size_t bytes = 0;
	for (auto _ : state) {
		state.PauseTiming();
		HnswConfig config;
		config.dim = dim;
		std::uint64_t offset = 0;
		std::uint32_t first = 0;
		if (HnswGraph::create(region.arena, config, offset) != HnswStatus::ok ||
			HnswGraph(region.arena, offset).append_batch(vectors, generations, first) != HnswStatus::ok) {
			state.SkipWithError("appending failed");
			return;
		}
		HnswGraph graph(region.arena, offset);
		bytes = graph.memory_bytes();
		state.ResumeTiming();
		graph.destroy();
	}
	state.counters["MB"] = static_cast<double>(bytes) / 1e6;
	state.counters["bytes/s"] = benchmark::Counter(static_cast<double>(bytes) * static_cast<double>(state.iterations()),
												   benchmark::Counter::kIsRate);
}
BENCHMARK(destroy_graph)->Name("destroy/x128")->Arg(1'000'000)->Iterations(5)->Unit(benchmark::kMillisecond);

} // namespace
} // namespace engram::core

BENCHMARK_MAIN();
