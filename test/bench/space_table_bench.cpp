// Finding a space's directory slot from its id, as every recall and every
// ring record does: the SpaceTable at 10 and 10,000 spaces, beside the
// linear scan over 288-byte slots that the fixed 1,024-slot directory did.
#include "core/space_table.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

namespace {

using engram::core::SpaceTable;
using engram::core::SpaceTableBucket;

// The fields a linear scan reads, padded to the size of a directory slot.
struct ScannedSlot {
	std::uint32_t state;
	std::int32_t space_id;
	std::byte rest[280];
};

void
BM_SpaceTableFind(benchmark::State &state)
{
	const auto spaces = static_cast<std::int32_t>(state.range(0));
	std::vector<SpaceTableBucket> buckets(SpaceTable::buckets_for(static_cast<std::size_t>(spaces)));
	SpaceTable::clear(buckets);
	SpaceTable table(buckets);
	for (std::int32_t id = 1; id <= spaces; ++id)
		table.insert(id, id);
	std::int32_t id = 0;
	for (auto _ : state) {
		id = id % spaces + 1;
		benchmark::DoNotOptimize(table.find(id));
	}
}
BENCHMARK(BM_SpaceTableFind)->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000);

void
BM_LinearScan(benchmark::State &state)
{
	const auto spaces = static_cast<std::int32_t>(state.range(0));
	std::vector<ScannedSlot> slots(static_cast<std::size_t>(spaces));
	for (std::int32_t i = 0; i < spaces; ++i)
		slots[static_cast<std::size_t>(i)] = ScannedSlot{1, i + 1, {}};
	std::int32_t id = 0;
	for (auto _ : state) {
		id = id % spaces + 1;
		const ScannedSlot *found = nullptr;
		for (const ScannedSlot &s : slots)
			if (s.state == 1 && s.space_id == id) {
				found = &s;
				break;
			}
		benchmark::DoNotOptimize(found);
	}
}
BENCHMARK(BM_LinearScan)->Arg(10)->Arg(1000)->Arg(10000);

} // namespace

BENCHMARK_MAIN();
