// The two indexes the benchmarks compare, behind one shape: engram's HNSW
// graph in a heap region and hnswlib's HierarchicalNSW, each built from a
// Matrix of base vectors with the same M and ef_construction on a chosen
// number of threads.
//
// hnswlib is compiled here at its best: its AVX-512 kernels are enabled by
// target pragmas around its header (the equivalent of building it with
// -mavx512f), while engram picks its kernels at run time as in production.
// Under cosine, hnswlib uses its inner-product space, which equals cosine on
// the unit vectors the data sets hold.
#pragma once

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <tbb/task_arena.h>

#include "support/fvecs.hpp"
#include "support/hnsw_batch.hpp"

#pragma GCC push_options
#pragma GCC target("sse4.2,avx,avx2,fma,avx512f")
#define USE_SSE
#define USE_AVX
#define USE_AVX512
#include <hnswlib/hnswlib.h>
#pragma GCC pop_options

namespace engram::core::bench {

struct IndexParams {
	Metric metric = Metric::l2;
	std::uint32_t m = 16;
	std::uint32_t ef_construction = 64;
};

struct alignas(64) Line {
	std::byte b[64];
};

// An engram graph in its own heap region; pages are touched only when used,
// as with hnswlib's malloc.
struct EngramIndex {
	EngramIndex(const Matrix<float> &base, const IndexParams &params, Encoding encoding = Encoding::float32)
	{
		const std::size_t n = base.rows();
		const std::size_t per_node = 256 + encoded_bytes(encoding, base.dim) + 64;
		bytes = (2 * n * per_node + (64u << 20)) & ~std::size_t{63};
		memory = std::make_unique_for_overwrite<Line[]>(bytes / sizeof(Line));
		arena = Arena::create(reinterpret_cast<std::byte *>(memory.get()), bytes);
		HnswConfig config;
		config.dim = base.dim;
		config.metric = params.metric;
		config.encoding = encoding;
		config.m = params.m;
		config.ef_construction = params.ef_construction;
		std::uint64_t offset = 0;
		if (HnswGraph::create(arena, config, offset) != HnswStatus::ok)
			std::abort();
		graph.emplace(arena, offset);
	}

	void build(const Matrix<float> &base, int threads)
	{
		const std::vector<std::uint64_t> generations(base.rows(), 1);
		tbb::task_arena workers(threads);
		HnswStatus status = HnswStatus::ok;
		workers.execute([&] { status = insert_batch(*graph, base.values, generations, pool); });
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
	HnswlibIndex(const Matrix<float> &base, const IndexParams &params)
		: l2(base.dim), ip(base.dim),
		  index(params.metric == Metric::l2 ? static_cast<hnswlib::SpaceInterface<float> *>(&l2) : &ip, base.rows(),
				params.m, params.ef_construction, 100)
	{
	}

	void build(const Matrix<float> &base, int threads)
	{
		std::atomic<std::size_t> next{0};
		const auto work = [&] {
			for (std::size_t i; (i = next.fetch_add(1)) < base.rows();)
				index.addPoint(base.row(i).data(), i);
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

// recall@k of an engram graph over every query of the data set, each
// searched at ef.
inline double
graph_recall(const Dataset &set, const HnswGraph &graph, std::uint32_t ef, std::uint32_t k)
{
	SearchContext context;
	SearchParams params;
	params.k = k;
	params.ef = ef;
	std::vector<std::uint32_t> found(set.query.rows() * k, k_no_node);
	for (std::size_t q = 0; q < set.query.rows(); ++q) {
		const SearchResult r = graph.search(set.query.row(q), params, context);
		for (std::size_t i = 0; i < r.neighbors.size(); ++i)
			found[q * k + i] = r.neighbors[i].id;
	}
	return recall_at_k(set.truth, found, k);
}

} // namespace engram::core::bench
