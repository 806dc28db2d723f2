// What admission costs a commit, with 1 to 1,000 spaces holding backlog:
//   Admit     the fair-share decision and the backlog update a commit makes
//             (SpaceBacklog::admit), with the worker's consumed() that later
//             takes the rows off again;
//   Walk      what the commit path did before fair admission: pin each
//             space's graph and read its size and linked count, over every
//             space (the glue's old unlinked_vectors());
//   Census    the workers' measurement that replaced the walk, once every
//             50 ms or more instead of once per commit.
#include "core/arena.hpp"
#include "core/hnsw_graph.hpp"
#include "core/index_slot.hpp"
#include "core/space_backlog.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

namespace {

using namespace engram::core;

constexpr std::uint32_t k_dim = 128;

struct alignas(64) Line {
	std::byte b[64];
};

struct Backlog {
	explicit Backlog(std::uint32_t spaces)
		: lines(SpaceBacklog::region_bytes(1024) / sizeof(Line) + 1),
		  backlog(SpaceBacklog::create(reinterpret_cast<std::byte *>(lines.data()), 1024))
	{
		for (std::uint32_t s = 1; s <= spaces; ++s) {
			const BacklogDemand d{static_cast<std::int32_t>(s), k_dim, 10};
			backlog.admit(std::span(&d, 1), PipelineState{64 << 20, 0, 0, 0.1, 0}, 0.95);
		}
	}
	std::vector<Line> lines;
	SpaceBacklog backlog;
};

void
BM_Admit(benchmark::State &state)
{
	const auto spaces = static_cast<std::uint32_t>(state.range(0));
	Backlog b(spaces);
	std::int32_t space = 1;
	for (auto _ : state) {
		const BacklogDemand d{space, k_dim, 1};
		const AdmitVerdict v = b.backlog.admit(std::span(&d, 1), PipelineState{64 << 20, 0, 0, 0.1, 0}, 0.95);
		benchmark::DoNotOptimize(v);
		b.backlog.consumed(space, k_dim, 1, 0);
		space = space % static_cast<std::int32_t>(spaces) + 1;
	}
}
BENCHMARK(BM_Admit)->Arg(1)->Arg(10)->Arg(100)->Arg(1000);

struct Graphs {
	explicit Graphs(std::uint32_t spaces) : lines((std::size_t{spaces} << 16) / sizeof(Line) + 1024), slots(spaces)
	{
		arena = Arena::create(reinterpret_cast<std::byte *>(lines.data()), lines.size() * sizeof(Line));
		HnswConfig config;
		config.dim = k_dim;
		config.first_chunk_log2 = 2;
		for (IndexSlot &slot : slots) {
			std::uint64_t offset = 0;
			if (HnswGraph::create(arena, config, offset) == HnswStatus::ok) {
				reset(slot);
				install(slot, 0, offset);
			}
		}
	}
	std::vector<Line> lines;
	Arena arena{nullptr};
	std::vector<IndexSlot> slots;
};

void
BM_Walk(benchmark::State &state)
{
	Graphs g(static_cast<std::uint32_t>(state.range(0)));
	for (auto _ : state) {
		std::uint64_t unlinked = 0;
		for (IndexSlot &slot : g.slots)
			for (unsigned which = 0; which < 2; ++which) {
				if (slot.graphs[which].load(std::memory_order_relaxed) == 0)
					continue;
				const GraphPin pin(slot, which);
				if (!pin)
					continue;
				const HnswGraph graph(g.arena, pin.offset());
				unlinked += (graph.size() - std::min(graph.linked_count(), graph.size())) * (graph.dim() * 4 + 12);
			}
		benchmark::DoNotOptimize(unlinked);
	}
}
BENCHMARK(BM_Walk)->Arg(1)->Arg(10)->Arg(100)->Arg(1000);

void
BM_Census(benchmark::State &state)
{
	const auto spaces = static_cast<std::uint32_t>(state.range(0));
	Backlog b(spaces);
	std::vector<CensusRow> rows;
	for (std::uint32_t s = 1; s <= spaces; ++s)
		rows.push_back(CensusRow{static_cast<std::int32_t>(s), k_dim, 100});
	for (auto _ : state)
		b.backlog.census(rows);
}
BENCHMARK(BM_Census)->Arg(1)->Arg(10)->Arg(100)->Arg(1000);

} // namespace

BENCHMARK_MAIN();
