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
// hnswlib is compiled here at its best: its AVX-512 kernels are enabled by
// target pragmas around its header (the equivalent of building it with
// -mavx512f), while engram picks its kernels at run time as in production.
// Search graphs are built once per data set and process, on one thread for
// both libraries; the build benchmarks time fresh builds and also report the
// recall@10 at ef 64 of the graph each build produced (a parallel build is
// not deterministic, so its graph differs slightly from run to run).
//
// Run: build-hnsw/hnsw_bench --benchmark_counters_tabular=true
//      (--benchmark_filter=sift5k for one data set; ENGRAM_BENCH_SWEEP=1 adds
//      more ef values for the recall/QPS plot).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <benchmark/benchmark.h>
#include <tbb/task_arena.h>

#include "core/fvecs.hpp"
#include "core/hnsw_batch.hpp"
#include "core/quantize.hpp"

#pragma GCC push_options
#pragma GCC target("sse4.2,avx,avx2,fma,avx512f")
#define USE_SSE
#define USE_AVX
#define USE_AVX512
#include <hnswlib/hnswlib.h>
#pragma GCC pop_options

namespace engram::core {
namespace {

constexpr std::uint32_t k_m = 16;
constexpr std::uint32_t k_ef_construction = 64;
constexpr std::uint32_t k_k = 10;

struct alignas(64) Line {
	std::byte b[64];
};

struct Data {
	Dataset set;
	Metric metric = Metric::l2;
};

// An engram graph in its own heap region; pages are touched only when used,
// as with hnswlib's malloc.
struct EngramIndex {
	EngramIndex(const Data &d, Encoding encoding)
	{
		const std::size_t n = d.set.base.rows();
		const std::size_t per_node = 256 + encoded_bytes(encoding, d.set.base.dim) + 64;
		bytes = (2 * n * per_node + (64u << 20)) & ~std::size_t{63};
		memory = std::make_unique_for_overwrite<Line[]>(bytes / sizeof(Line));
		arena = Arena::create(reinterpret_cast<std::byte *>(memory.get()), bytes);
		HnswConfig config;
		config.dim = d.set.base.dim;
		config.metric = d.metric;
		config.encoding = encoding;
		config.m = k_m;
		config.ef_construction = k_ef_construction;
		std::uint64_t offset = 0;
		if (HnswGraph::create(arena, config, offset) != HnswStatus::ok)
			std::abort();
		graph.emplace(arena, offset);
	}

	void build(const Data &d, int threads)
	{
		const std::vector<std::uint64_t> generations(d.set.base.rows(), 1);
		tbb::task_arena workers(threads);
		HnswStatus status = HnswStatus::ok;
		workers.execute([&] { status = insert_batch(*graph, d.set.base.values, generations, pool); });
		if (status != HnswStatus::ok)
			std::abort();
	}

	std::size_t bytes = 0;
	std::unique_ptr<Line[]> memory;
	Arena arena{nullptr};
	std::optional<HnswGraph> graph;
	HnswContextPool pool;
};

struct HnswlibIndex {
	explicit HnswlibIndex(const Data &d)
		: l2(d.set.base.dim), ip(d.set.base.dim),
		  index(d.metric == Metric::l2 ? static_cast<hnswlib::SpaceInterface<float> *>(&l2) : &ip,
				d.set.base.rows(), k_m, k_ef_construction, 100)
	{
	}

	void build(const Data &d, int threads)
	{
		std::atomic<std::size_t> next{0};
		const auto work = [&] {
			for (std::size_t i; (i = next.fetch_add(1)) < d.set.base.rows();)
				index.addPoint(d.set.base.row(i).data(), i);
		};
		std::vector<std::thread> extra;
		for (int t = 1; t < threads; ++t)
			extra.emplace_back(work);
		work();
		for (auto &t : extra)
			t.join();
	}

	// Level-0 blocks, upper link lists, per-node mutexes and levels; the
	// label hash map is left out, so this slightly favours hnswlib.
	double bytes_per_vector() const
	{
		double bytes = double(index.max_elements_) * double(index.size_data_per_element_);
		for (std::size_t i = 0; i < index.cur_element_count; ++i)
			bytes += double(index.element_levels_[i]) * double(index.size_links_per_element_);
		bytes += double(index.max_elements_) * (sizeof(std::mutex) + sizeof(int) + sizeof(void *));
		return bytes / double(index.cur_element_count);
	}

	hnswlib::L2Space l2;
	hnswlib::InnerProductSpace ip;
	hnswlib::HierarchicalNSW<float> index;
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
			slot = std::make_unique<EngramIndex>(data(name), encoding);
			slot->build(data(name), 1);
		}
		return *slot;
	}

	HnswlibIndex &hnswlib(const std::string &name)
	{
		auto &slot = hnswlib_[name];
		if (!slot) {
			slot = std::make_unique<HnswlibIndex>(data(name));
			slot->build(data(name), 1);
		}
		return *slot;
	}

private:
	std::map<std::string, std::unique_ptr<Data>> data_;
	std::map<std::pair<std::string, int>, std::unique_ptr<EngramIndex>> engram_;
	std::map<std::string, std::unique_ptr<HnswlibIndex>> hnswlib_;
};

double
engram_recall(const Data &d, const HnswGraph &graph, std::uint32_t ef)
{
	SearchContext context;
	SearchParams params;
	params.k = k_k;
	params.ef = ef;
	std::vector<std::uint32_t> found(d.set.query.rows() * k_k, k_no_node);
	for (std::size_t q = 0; q < d.set.query.rows(); ++q) {
		const SearchResult r = graph.search(d.set.query.row(q), params, context);
		for (std::size_t i = 0; i < r.neighbors.size(); ++i)
			found[q * k_k + i] = r.neighbors[i].id;
	}
	return recall_at_k(d.set.truth, found, k_k);
}

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
		auto index = std::make_unique<EngramIndex>(d, Encoding::float32);
		state.ResumeTiming();
		index->build(d, threads);
		state.PauseTiming();
		bytes_per_vector = double(index->graph->memory_bytes()) / double(d.set.base.rows());
		bytes_per_node = double(index->graph->used_bytes()) / double(d.set.base.rows());
		recall = engram_recall(d, *index->graph, 64);
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
		auto index = std::make_unique<HnswlibIndex>(d);
		state.ResumeTiming();
		index->build(d, threads);
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
				->Arg(threads)->ArgName("threads")->Iterations(1)->Repetitions(repetitions)
				->Unit(benchmark::kMillisecond)->UseRealTime();
			benchmark::RegisterBenchmark(("build/hnswlib/" + name).c_str(), build_hnswlib, std::ref(suite), name)
				->Arg(threads)->ArgName("threads")->Iterations(1)->Repetitions(repetitions)
				->Unit(benchmark::kMillisecond)->UseRealTime();
		}
		for (std::int64_t ef : ef_values()) {
			benchmark::RegisterBenchmark(("search/engram/" + name).c_str(), search_engram, std::ref(suite), name,
										 Encoding::float32)
				->Arg(ef)->ArgName("ef")->Unit(benchmark::kMillisecond)->MinTime(1.0);
			benchmark::RegisterBenchmark(("search/hnswlib/" + name).c_str(), search_hnswlib, std::ref(suite), name)
				->Arg(ef)->ArgName("ef")->Unit(benchmark::kMillisecond)->MinTime(1.0);
		}
		for (std::int64_t ef : {32, 64, 128}) {
			for (Encoding encoding : {Encoding::float16, Encoding::sq8}) {
				const std::string lib = encoding == Encoding::float16 ? "engram-f16" : "engram-sq8";
				benchmark::RegisterBenchmark(("search/" + lib + "/" + name).c_str(), search_engram, std::ref(suite),
											 name, encoding)
					->Arg(ef)->ArgName("ef")->Unit(benchmark::kMillisecond)->MinTime(1.0);
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
