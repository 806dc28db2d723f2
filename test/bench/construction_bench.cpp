// What ef_construction and M cost a build and buy a search: the measurements
// behind the space defaults (engram.create_space's m and ef_construction, and
// engram.ef_search).
//
// For each data set and each (M, ef_construction) it builds a graph on one
// thread (so the graph, and with it the recall, is the same from run to run)
// and reports the build rate, the bytes used per node and recall@10 at the
// ef values a recall uses: 64, and 128 (engram.ef_search's default). At the
// space defaults (m 16, ef_construction 100) it also builds each set stored
// as f16 (storage 1) and sq8 (storage 2), so what linking costs in each
// storage can be compared. The data
// sets are those of ../shared/data (sift5k, fashion-mnist, glove100) and, when
// ENGRAM_PEER_DATA names a folder holding it, the synthetic 768-d set of the
// SQL benchmarks (synth768, cosine; test/data/engram_synthetic.cpp).
//
// Run: build/release/construction_bench --benchmark_counters_tabular=true
//      [--benchmark_filter=glove100]
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "peer_indexes.hpp"

namespace engram::core {
namespace {

using bench::EngramIndex;
using bench::IndexParams;

constexpr std::uint32_t k_k = 10;

struct Data {
	Dataset set;
	Metric metric = Metric::l2;
};

std::string
folder_of(const std::string &name)
{
	if (name != "synth768")
		return ENGRAM_DATA_DIR;
	const char *dir = std::getenv("ENGRAM_PEER_DATA");
	return dir != nullptr ? dir : "/tmp/engram-data";
}

// Data sets, loaded on first use; a missing one skips its benchmarks.
class Sets {
public:
	const Data *get(const std::string &name)
	{
		auto [at, fresh] = sets_.try_emplace(name);
		if (fresh) {
			auto data = std::make_unique<Data>();
			const std::string error = load_dataset(folder_of(name), name, data->set);
			if (error.empty()) {
				data->metric = name == "glove100" || name == "synth768" ? Metric::cosine : Metric::l2;
				at->second = std::move(data);
			} else {
				std::fprintf(stderr, "skipping %s: %s\n", name.c_str(), error.c_str());
			}
		}
		return at->second.get();
	}

private:
	std::map<std::string, std::unique_ptr<Data>> sets_;
};

void
build(benchmark::State &state, Sets &sets, const std::string &name)
{
	const Data *d = sets.get(name);
	if (d == nullptr) {
		state.SkipWithError("data set not found");
		return;
	}
	const IndexParams params{d->metric, static_cast<std::uint32_t>(state.range(0)),
							 static_cast<std::uint32_t>(state.range(1))};
	double recall64 = 0.0, recall128 = 0.0, used = 0.0;
	for (auto _ : state) {
		state.PauseTiming();
		auto index = std::make_unique<EngramIndex>(d->set.base, params, static_cast<Encoding>(state.range(2)));
		state.ResumeTiming();
		index->build(d->set.base, 1);
		state.PauseTiming();
		used = double(index->graph->used_bytes()) / double(d->set.base.rows());
		recall64 = bench::graph_recall(d->set, *index->graph, 64, k_k);
		recall128 = bench::graph_recall(d->set, *index->graph, 128, k_k);
		index.reset();
		state.ResumeTiming();
	}
	state.counters["vectors/s"] =
		benchmark::Counter(double(d->set.base.rows()), benchmark::Counter::kIsIterationInvariantRate);
	state.counters["used/vector"] = used;
	state.counters["recall@ef64"] = recall64;
	state.counters["recall@ef128"] = recall128;
}

void
register_benchmarks(Sets &sets)
{
	for (const std::string name : {"sift5k", "fashion-mnist", "glove100", "synth768"})
		for (const std::int64_t m : {12, 16, 24})
			for (const std::int64_t ef_construction : {48, 64, 100, 128, 200}) {
				if (m != 16 && ef_construction != 64 && ef_construction != 100)
					continue; // M is swept at the two candidate ef_construction values only
				const bool defaults = m == 16 && ef_construction == 100;
				for (const Encoding storage : {Encoding::float32, Encoding::float16, Encoding::sq8}) {
					if (storage != Encoding::float32 && !defaults)
						continue;
					benchmark::RegisterBenchmark(("build/" + name).c_str(), build, std::ref(sets), name)
						->Args({m, ef_construction, static_cast<std::int64_t>(storage)})
						->ArgNames({"m", "efc", "storage"})
						->Iterations(1)
						->Unit(benchmark::kMillisecond)
						->UseRealTime();
				}
			}
}

} // namespace
} // namespace engram::core

int
main(int argc, char **argv)
{
	engram::core::Sets sets;
	engram::core::register_benchmarks(sets);
	benchmark::Initialize(&argc, argv);
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	return 0;
}
