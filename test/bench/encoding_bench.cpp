// What a space's storage encoding costs in recall, latency and memory, at a
// space's defaults (m 16, ef_construction 100, engram.ef_search 128), and
// what re-ranking quantized candidates with exact float32 vectors buys back.
//
// For fashion-mnist (l2) and glove100 (cosine), each encoding's graph is
// built once (on two threads), then every query is searched for R candidates
// at ef 128 and answered with the first 10:
//   R = 10      the graph's own ranking (no re-rank)
//   R = 20..128 the R candidates re-ranked by exact float32 distance
//               (exact_distances, as engram.recall does with the vectors it
//               reads from engram.observations), then the first 10
// Counters: recall@10 against the data set's ground truth, the search and
// re-rank time per query (us/query; the SQL recall adds reading R rows), and
// the bytes per vector the graph's nodes occupy (used/vector).
//
// Run: build/bench/encoding_bench --benchmark_counters_tabular=true
//      (cmake -DENGRAM_BENCHMARKS=ON; --benchmark_filter=glove100 for one set)
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/hnsw_context.hpp"
#include "core/rerank.hpp"
#include "peer_indexes.hpp"

namespace engram::core {
namespace {

constexpr std::uint32_t k_k = 10;
constexpr std::uint32_t k_ef_search = 128;

struct Built {
	Dataset set;
	std::map<int, std::unique_ptr<bench::EngramIndex>> graphs;
};

Built &
built(const std::string &name, Encoding encoding)
{
	static std::map<std::string, Built> all;
	Built &b = all[name];
	if (b.set.base.rows() == 0) {
		const std::string error = load_dataset(ENGRAM_DATA_DIR, name, b.set);
		if (!error.empty()) {
			std::fprintf(stderr, "%s\n", error.c_str());
			std::exit(1);
		}
	}
	auto &graph = b.graphs[static_cast<int>(encoding)];
	if (!graph) {
		const bench::IndexParams params{name == "glove100" ? Metric::cosine : Metric::l2, 16, 100};
		graph = std::make_unique<bench::EngramIndex>(b.set.base, params, encoding);
		graph->build(b.set.base, 2);
	}
	return b;
}

void
search_encoding(benchmark::State &state, const std::string &name, Encoding encoding, std::uint32_t candidates)
{
	Built &b = built(name, encoding);
	const HnswGraph &graph = *b.graphs[static_cast<int>(encoding)]->graph;
	const Metric metric = graph.metric();
	const std::size_t queries = b.set.query.rows();
	SearchParams params;
	params.k = candidates;
	params.ef = std::max(k_ef_search, candidates);
	SearchContext context;
	std::vector<std::uint32_t> found(queries * k_k, k_no_node);
	std::vector<const float *> vectors;
	std::vector<float> distances;
	std::vector<Neighbor> ranked;
	double seconds = 0;
	for (auto _ : state) {
		const auto start = std::chrono::steady_clock::now();
		for (std::size_t q = 0; q < queries; ++q) {
			const std::span<const float> query = b.set.query.row(q);
			const SearchResult r = graph.search(query, params, context);
			ranked.assign(r.neighbors.begin(), r.neighbors.end());
			if (candidates > k_k) {
				vectors.clear();
				distances.clear();
				for (const Neighbor &n : ranked) {
					vectors.push_back(b.set.base.row(n.id).data());
					distances.push_back(n.distance);
				}
				exact_distances(metric, query, vectors, distances);
				for (std::size_t i = 0; i < ranked.size(); ++i)
					ranked[i].distance = distances[i];
				std::sort(ranked.begin(), ranked.end());
			}
			for (std::size_t i = 0; i < std::min<std::size_t>(k_k, ranked.size()); ++i)
				found[q * k_k + i] = ranked[i].id;
		}
		seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
	}
	state.counters["recall@10"] = recall_at_k(b.set.truth, found, k_k);
	state.counters["us/query"] = 1e6 * seconds / static_cast<double>(queries * state.iterations());
	state.counters["vector bytes"] = static_cast<double>(encoded_bytes(encoding, graph.dim()));
	state.counters["used/vector"] = static_cast<double>(graph.used_bytes()) / static_cast<double>(graph.size());
}

const int registered = [] {
	for (const std::string name : {"fashion-mnist", "glove100"})
		for (const auto &[label, encoding] :
			 {std::pair{"f32", Encoding::float32}, {"f16", Encoding::float16}, {"sq8", Encoding::sq8}})
			for (const std::uint32_t candidates : {10u, 20u, 40u, 128u}) {
				if (encoding == Encoding::float32 && candidates > k_k)
					continue;
				const std::string title = name + "/" + label + "/candidates:" + std::to_string(candidates);
				benchmark::RegisterBenchmark(
					title.c_str(), [=](benchmark::State &state) { search_encoding(state, name, encoding, candidates); })
					->Iterations(1)
					->Unit(benchmark::kMillisecond);
			}
	return 0;
}();

} // namespace
} // namespace engram::core

BENCHMARK_MAIN();
