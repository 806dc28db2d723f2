// engram's HNSW core against hnswlib on the same data, parameters and machine.
//
// Both libraries build with M = 16 and ef_construction = 64 and search for
// the 10 nearest neighbours of every query of a data set; recall@10 is
// measured against the exact ground truth shipped with the data. Reported:
//   build/<lib>/<data>/threads:N   vectors per second (counter "vectors/s")
//   search/<lib>/<data>/ef:E       queries per second, recall, distances per query
//   memory per vector              "bytes/vector": all memory the index holds / vectors;
//                                  "used/vector" (engram): the bytes its nodes occupy, without
//                                  the unused tail of its last chunk
// engram's float16 and sq8 encodings are searched with float32 re-ranking
// from the base vectors ("search/engram-f16", "search/engram-sq8").
//
// Both indexes come from peer_indexes.hpp (hnswlib compiled at its best,
// engram with run-time kernel choice, as in production). Search graphs are built once per data set and process, on one thread for
// both libraries; the build benchmarks time fresh builds and also report the
// recall@10 at ef 64 of the graph each build produced (a parallel build is
// not deterministic, so its graph differs slightly from run to run).
//
// Run: build-hnsw/hnsw_bench --benchmark_counters_tabular=true
//      (--benchmark_filter=sift5k for one data set; ENGRAM_BENCH_SWEEP=1 adds
//      more ef values for the recall/QPS plot).
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/quantize.hpp"
#include "peer_indexes.hpp"

namespace engram::core {
namespace {

constexpr std::uint32_t k_m = 16;
constexpr std::uint32_t k_ef_construction = 64;
constexpr std::uint32_t k_k = 10;

using bench::EngramIndex;
using bench::HnswlibIndex;
using bench::IndexParams;

struct Data {
	Dataset set;
	Metric metric = Metric::l2;

	IndexParams params() const { return IndexParams{metric, k_m, k_ef_construction}; }
};

// Data sets and search graphs, loaded and built on first use and shared by
// the benchmarks of one run (benchmarks run one at a time, on one thread).
class Suite {
public:
	const Data &data(const std::string &name)
	{
		auto &slot = data_[name];
		if (!slot) {
			slot = std::make_unique<Data>();
			const std::string error = load_dataset(ENGRAM_DATA_DIR, name, slot->set);
			if (!error.empty()) {
				std::fprintf(stderr, "%s\n", error.c_str());
				std::exit(1);
			}
			slot->metric = name == "glove100" ? Metric::cosine : Metric::l2;
		}
		return *slot;
	}

	EngramIndex &engram(const std::string &name, Encoding encoding)
	{
		auto &slot = engram_[{name, static_cast<int>(encoding)}];
		if (!slot) {
			slot = std::make_unique<EngramIndex>(data(name).set.base, data(name).params(), encoding);
			slot->build(data(name).set.base, 1);
		}
		return *slot;
	}

	HnswlibIndex &hnswlib(const std::string &name)
	{
		auto &slot = hnswlib_[name];
		if (!slot) {
			slot = std::make_unique<HnswlibIndex>(data(name).set.base, data(name).params());
			slot->build(data(name).set.base, 1);
		}
		return *slot;
	}

private:
	std::map<std::string, std::unique_ptr<Data>> data_;
	std::map<std::pair<std::string, int>, std::unique_ptr<EngramIndex>> engram_;
	std::map<std::string, std::unique_ptr<HnswlibIndex>> hnswlib_;
};

double
hnswlib_recall(const Data &d, hnswlib::HierarchicalNSW<float> &index, std::uint32_t ef)
{
	index.setEf(ef);
	std::vector<std::uint32_t> found(d.set.query.rows() * k_k, k_no_node);
	for (std::size_t q = 0; q < d.set.query.rows(); ++q) {
		auto r = index.searchKnn(d.set.query.row(q).data(), k_k);
		for (std::size_t i = r.size(); i-- > 0; r.pop())
			found[q * k_k + i] = static_cast<std::uint32_t>(r.top().second);
	}
	return recall_at_k(d.set.truth, found, k_k);
}

void
build_engram(benchmark::State &state, Suite &suite, const std::string &name)
{
	const Data &d = suite.data(name);
	const int threads = static_cast<int>(state.range(0));
	double bytes_per_vector = 0.0, bytes_per_node = 0.0, recall = 0.0;
	for (auto _ : state) {
		state.PauseTiming();
		auto index = std::make_unique<EngramIndex>(d.set.base, d.params());
		state.ResumeTiming();
		index->build(d.set.base, threads);
		state.PauseTiming();
		bytes_per_vector = double(index->graph->memory_bytes()) / double(d.set.base.rows());
		bytes_per_node = double(index->graph->used_bytes()) / double(d.set.base.rows());
		recall = bench::graph_recall(d.set, *index->graph, 64, k_k);
		index.reset();
		state.ResumeTiming();
	}
	state.counters["vectors/s"] =
		benchmark::Counter(double(d.set.base.rows()), benchmark::Counter::kIsIterationInvariantRate);
	state.counters["bytes/vector"] = bytes_per_vector;
	state.counters["used/vector"] = bytes_per_node;
	state.counters["recall@ef64"] = recall;
}

void
build_hnswlib(benchmark::State &state, Suite &suite, const std::string &name)
{
	const Data &d = suite.data(name);
	const int threads = static_cast<int>(state.range(0));
	double bytes_per_vector = 0.0, recall = 0.0;
	for (auto _ : state) {
		state.PauseTiming();
		auto index = std::make_unique<HnswlibIndex>(d.set.base, d.params());
		state.ResumeTiming();
		index->build(d.set.base, threads);
		state.PauseTiming();
		bytes_per_vector = index->bytes_per_vector();
		recall = hnswlib_recall(d, index->index, 64);
		index.reset();
		state.ResumeTiming();
	}
	state.counters["vectors/s"] =
		benchmark::Counter(double(d.set.base.rows()), benchmark::Counter::kIsIterationInvariantRate);
	state.counters["bytes/vector"] = bytes_per_vector;
	state.counters["recall@ef64"] = recall;
}

const float *
base_vector(const void *self, std::uint32_t id) noexcept
{
	return static_cast<const Data *>(self)->set.base.row(id).data();
}

void
search_engram(benchmark::State &state, Suite &suite, const std::string &name, Encoding encoding)
{
	const Data &d = suite.data(name);
	EngramIndex &index = suite.engram(name, encoding);
	const VectorSource source{&base_vector, &d};
	SearchParams params;
	params.k = k_k;
	params.ef = static_cast<std::uint32_t>(state.range(0));
	params.rerank = encoding == Encoding::float32 ? nullptr : &source;
	SearchContext context;
	context.reserve(*index.graph, params.ef);
	const std::size_t queries = d.set.query.rows();
	std::vector<std::uint32_t> found(queries * k_k, k_no_node);
	std::uint64_t distances = 0, runs = 0;
	for (auto _ : state) {
		for (std::size_t q = 0; q < queries; ++q) {
			const SearchResult r = index.graph->search(d.set.query.row(q), params, context);
			for (std::size_t i = 0; i < r.neighbors.size(); ++i)
				found[q * k_k + i] = r.neighbors[i].id;
			distances += r.stats.distances;
		}
		++runs;
	}
	state.counters["QPS"] = benchmark::Counter(double(queries), benchmark::Counter::kIsIterationInvariantRate);
	state.counters["recall"] = recall_at_k(d.set.truth, found, k_k);
	state.counters["dist/query"] = double(distances) / double(runs * queries);
	state.counters["bytes/vector"] = double(index.graph->memory_bytes()) / double(d.set.base.rows());
	state.counters["used/vector"] = double(index.graph->used_bytes()) / double(d.set.base.rows());
}

void
search_hnswlib(benchmark::State &state, Suite &suite, const std::string &name)
{
	const Data &d = suite.data(name);
	HnswlibIndex &index = suite.hnswlib(name);
	const auto ef = static_cast<std::uint32_t>(state.range(0));
	index.index.setEf(ef);
	const std::size_t queries = d.set.query.rows();
	for (auto _ : state) {
		for (std::size_t q = 0; q < queries; ++q) {
			auto r = index.index.searchKnn(d.set.query.row(q).data(), k_k);
			benchmark::DoNotOptimize(r);
		}
	}
	state.counters["QPS"] = benchmark::Counter(double(queries), benchmark::Counter::kIsIterationInvariantRate);
	state.counters["recall"] = hnswlib_recall(d, index.index, ef);
	state.counters["bytes/vector"] = index.bytes_per_vector();
}

std::vector<std::int64_t>
ef_values()
{
	if (std::getenv("ENGRAM_BENCH_SWEEP") != nullptr)
		return {10, 16, 24, 32, 48, 64, 96, 128, 192, 256};
	return {32, 64, 128};
}

void
register_benchmarks(Suite &suite)
{
	for (const std::string name : {"sift5k", "fashion-mnist", "glove100"}) {
		const int repetitions = name == "glove100" ? 2 : 3;
		for (int threads : {1, 2}) {
			benchmark::RegisterBenchmark(("build/engram/" + name).c_str(), build_engram, std::ref(suite), name)
				->Arg(threads)
				->ArgName("threads")
				->Iterations(1)
				->Repetitions(repetitions)
				->Unit(benchmark::kMillisecond)
				->UseRealTime();
			benchmark::RegisterBenchmark(("build/hnswlib/" + name).c_str(), build_hnswlib, std::ref(suite), name)
				->Arg(threads)
				->ArgName("threads")
				->Iterations(1)
				->Repetitions(repetitions)
				->Unit(benchmark::kMillisecond)
				->UseRealTime();
		}
		for (std::int64_t ef : ef_values()) {
			benchmark::RegisterBenchmark(("search/engram/" + name).c_str(), search_engram, std::ref(suite), name,
										 Encoding::float32)
				->Arg(ef)
				->ArgName("ef")
				->Unit(benchmark::kMillisecond)
				->MinTime(1.0);
			benchmark::RegisterBenchmark(("search/hnswlib/" + name).c_str(), search_hnswlib, std::ref(suite), name)
				->Arg(ef)
				->ArgName("ef")
				->Unit(benchmark::kMillisecond)
				->MinTime(1.0);
		}
		for (std::int64_t ef : {32, 64, 128}) {
			for (Encoding encoding : {Encoding::float16, Encoding::sq8}) {
				const std::string lib = encoding == Encoding::float16 ? "engram-f16" : "engram-sq8";
				benchmark::RegisterBenchmark(("search/" + lib + "/" + name).c_str(), search_engram, std::ref(suite),
											 name, encoding)
					->Arg(ef)
					->ArgName("ef")
					->Unit(benchmark::kMillisecond)
					->MinTime(1.0);
			}
		}
	}
}

} // namespace
} // namespace engram::core

int
main(int argc, char **argv)
{
	engram::core::Suite suite;
	engram::core::register_benchmarks(suite);
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	return 0;
}
