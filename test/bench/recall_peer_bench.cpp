// The in-process peers of SQL recall: the same data set, index parameters
// and queries as the SQL recall benchmark (test/scripts/engram.sh bench),
// answered by hnswlib and by engram's core directly, one query at a time on
// one thread, so that `engram.recall` through SQL can be reported as a ratio
// of both.
//
//   ENGRAM_PEER_DATA=DIR ENGRAM_PEER_SET=NAME [ENGRAM_PEER_METRIC=cosine|l2]
//   [ENGRAM_PEER_EF=128 | ENGRAM_PEER_EFS=16,32,...] [ENGRAM_PEER_M=16]
//   [ENGRAM_PEER_EF_CONSTRUCTION=200] recall_peer_bench --benchmark_counters_tabular=true
//
// DIR/NAME holds NAME_base.fvecs, NAME_query.fvecs and NAME_groundtruth.ivecs
// (engram_synthetic writes such a set). Both indexes are built once with the
// same M and ef_construction (by default 16 and 200, engram's defaults for a
// space) on two threads; searches use k = 10 and each ef of ENGRAM_PEER_EFS
// (by default ENGRAM_PEER_EF alone, engram.ef_search's default 128), one
// benchmark per index and ef ("recall/hnswlib/ef:128"). Reported per run:
// QPS, p50/p99 latency of one query in microseconds, recall@10 against the
// exact ground truth, and the build rate.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>

#include <benchmark/benchmark.h>

#include "peer_indexes.hpp"

namespace engram::core::bench {
namespace {

constexpr std::uint32_t k_k = 10;

std::string
env_or(const char *name, const char *fallback)
{
	const char *v = std::getenv(name);
	return v != nullptr && *v != '\0' ? v : fallback;
}

struct Peers {
	Peers()
	{
		const std::string dir = env_or("ENGRAM_PEER_DATA", "/tmp/engram-work/data");
		const std::string name = env_or("ENGRAM_PEER_SET", "synth768");
		const std::string error = load_dataset(dir, name, data);
		if (!error.empty()) {
			std::fprintf(stderr, "recall_peer_bench: %s\n", error.c_str());
			std::exit(1);
		}
		params.metric = env_or("ENGRAM_PEER_METRIC", "cosine") == "l2" ? Metric::l2 : Metric::cosine;
		params.m = static_cast<std::uint32_t>(std::stoul(env_or("ENGRAM_PEER_M", "16")));
		params.ef_construction = static_cast<std::uint32_t>(std::stoul(env_or("ENGRAM_PEER_EF_CONSTRUCTION", "200")));
		std::stringstream list(env_or("ENGRAM_PEER_EFS", env_or("ENGRAM_PEER_EF", "128").c_str()));
		for (std::string ef; std::getline(list, ef, ',');)
			efs.push_back(static_cast<std::uint32_t>(std::stoul(ef)));
	}

	template <typename Index>
	Index &built(std::unique_ptr<Index> &slot, double &seconds)
	{
		if (!slot) {
			slot = std::make_unique<Index>(data.base, params);
			const auto started = std::chrono::steady_clock::now();
			slot->build(data.base, 2);
			seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
		}
		return *slot;
	}

	Dataset data;
	IndexParams params;
	std::vector<std::uint32_t> efs;
	std::unique_ptr<EngramIndex> engram;
	std::unique_ptr<HnswlibIndex> hnswlib;
	double engram_build_seconds = 0, hnswlib_build_seconds = 0;
};

// Runs every query once per iteration, timing each; `search` fills ids.
template <typename Search>
void
run_queries(benchmark::State &state, const Peers &peers, double build_seconds, Search &&search)
{
	const std::size_t queries = peers.data.query.rows();
	std::vector<std::uint32_t> found(queries * k_k, k_no_node);
	std::vector<double> micros;
	for (auto _ : state) {
		for (std::size_t q = 0; q < queries; ++q) {
			const auto started = std::chrono::steady_clock::now();
			search(peers.data.query.row(q), std::span<std::uint32_t>(found).subspan(q * k_k, k_k));
			micros.push_back(
				std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started).count());
		}
	}
	std::sort(micros.begin(), micros.end());
	const auto percentile = [&](double p) {
		return micros[std::min(micros.size() - 1, std::size_t(p * micros.size()))];
	};
	state.counters["QPS"] = benchmark::Counter(double(queries), benchmark::Counter::kIsIterationInvariantRate);
	state.counters["p50_us"] = percentile(0.50);
	state.counters["p99_us"] = percentile(0.99);
	state.counters["recall"] = recall_at_k(peers.data.truth, found, k_k);
	state.counters["build_vectors/s"] = double(peers.data.base.rows()) / build_seconds;
}

void
search_hnswlib(benchmark::State &state, Peers &peers, std::uint32_t ef)
{
	HnswlibIndex &index = peers.built(peers.hnswlib, peers.hnswlib_build_seconds);
	index.index.setEf(ef);
	run_queries(state, peers, peers.hnswlib_build_seconds, [&](std::span<const float> q, std::span<std::uint32_t> out) {
		auto r = index.index.searchKnn(q.data(), k_k);
		for (std::size_t i = r.size(); i-- > 0; r.pop())
			out[i] = static_cast<std::uint32_t>(r.top().second);
	});
	state.counters["bytes/vector"] = index.bytes_per_vector();
}

void
search_engram(benchmark::State &state, Peers &peers, std::uint32_t ef)
{
	EngramIndex &index = peers.built(peers.engram, peers.engram_build_seconds);
	SearchContext context;
	context.reserve(*index.graph, ef);
	SearchParams params;
	params.k = k_k;
	params.ef = ef;
	run_queries(state, peers, peers.engram_build_seconds, [&](std::span<const float> q, std::span<std::uint32_t> out) {
		const SearchResult r = index.graph->snapshot_search(q, params, context);
		for (std::size_t i = 0; i < r.neighbors.size(); ++i)
			out[i] = r.neighbors[i].id;
	});
}

} // namespace
} // namespace engram::core::bench

int
main(int argc, char **argv)
{
	using namespace engram::core::bench;
	Peers peers;
	for (const auto &[name, search] :
		 {std::pair{"recall/hnswlib", &search_hnswlib}, std::pair{"recall/engram-core", &search_engram}})
		for (std::uint32_t ef : peers.efs)
			benchmark::RegisterBenchmark((std::string(name) + "/ef:" + std::to_string(ef)).c_str(), search,
										 std::ref(peers), ef)
				->Unit(benchmark::kMicrosecond)
				->MinTime(3.0)
				->UseRealTime();
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	return 0;
}
