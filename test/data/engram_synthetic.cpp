// engram_synthetic: writes a synthetic embedding data set in the layout of
// ../shared/data (base, queries and exact top-100 ground truth as
// .fvecs/.ivecs), for the main job and the benchmarks that need sizes or
// dimensions the real data sets do not have (100,000 x 768, say).
//
//   engram_synthetic --out DIR --name NAME --dim N --rows N --queries N
//                    [--first N] [--metric l2|cosine] [--seed N]
//
// Why not plain Gaussian noise: in hundreds of dimensions independent noise
// puts every point at almost the same distance from every other, a data set
// on which no approximate index (and no application) finds meaningful
// neighbours. Real embeddings have a low intrinsic dimension and clusters, so
// the generator draws a point in a 64-dimensional latent space from one of
// 500 overlapping clusters, maps it into `dim` dimensions with one fixed
// random linear map, and adds a little isotropic noise. Queries come from the
// same mixture but are not base points. Under cosine the vectors are stored
// normalised. --first N starts the base at point N of the same mixture, so a
// second file can hold the continuation of a stream (with --queries 0 it has
// no queries and no ground truth).
//
// The ground truth is exact: every query against every base vector with the
// core's float32 kernels, ties broken by the smaller index, as in the READMEs
// of ../shared/data. The output is a pure function of the options.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/distance.hpp"
#include "support/fvecs.hpp"

namespace {

using engram::core::Matrix;
using engram::core::Metric;

constexpr std::uint32_t k_latent = 64;
constexpr std::uint32_t k_clusters = 500;
constexpr std::uint32_t k_truth = 100;
constexpr float k_spread = 1.0f; // within-cluster spread, relative to the spread of the cluster centres
constexpr float k_noise = 0.05f; // isotropic noise, relative to a component's typical size

struct Options {
	std::string out, name;
	std::uint32_t dim = 768, rows = 100000, queries = 1000, first = 0;
	Metric metric = Metric::cosine;
	std::uint64_t seed = 20261130;
};

[[noreturn]] void
die(const std::string &message)
{
	std::fprintf(stderr, "engram_synthetic: %s\n", message.c_str());
	std::exit(1);
}

Options
parse(int argc, char **argv)
{
	Options o;
	for (int i = 1; i + 1 < argc; i += 2) {
		const std::string k = argv[i], v = argv[i + 1];
		if (k == "--out")
			o.out = v;
		else if (k == "--name")
			o.name = v;
		else if (k == "--dim")
			o.dim = static_cast<std::uint32_t>(std::stoul(v));
		else if (k == "--rows")
			o.rows = static_cast<std::uint32_t>(std::stoul(v));
		else if (k == "--queries")
			o.queries = static_cast<std::uint32_t>(std::stoul(v));
		else if (k == "--first")
			o.first = static_cast<std::uint32_t>(std::stoul(v));
		else if (k == "--metric" && (v == "l2" || v == "cosine"))
			o.metric = v == "l2" ? Metric::l2 : Metric::cosine;
		else if (k == "--seed")
			o.seed = std::stoull(v);
		else
			die("unknown option or value: " + k + " " + v);
	}
	if (o.out.empty() || o.name.empty() || o.dim == 0 || o.rows < k_truth)
		die("usage: engram_synthetic --out DIR --name NAME --dim N --rows N (>= 100) --queries N "
			"[--first N] [--metric l2|cosine] [--seed N]");
	return o;
}

// Calls f(i) for every i below n, spread over one thread per core.
template <typename F>
void
for_each_parallel(std::uint32_t n, F &&f)
{
	const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
	std::vector<std::thread> pool;
	for (unsigned t = 0; t < threads; ++t)
		pool.emplace_back([&, t] {
			for (std::uint32_t i = t; i < n; i += threads)
				f(i);
		});
	for (auto &t : pool)
		t.join();
}

class Mixture {
public:
	explicit Mixture(const Options &o)
		: o_(o), map_(std::size_t{o.dim} * k_latent), centres_(std::size_t{k_clusters} * k_latent)
	{
		std::mt19937_64 rng(o.seed);
		std::normal_distribution<float> gauss;
		const float scale = 1.0f / std::sqrt(float(k_latent));
		for (float &w : map_)
			w = gauss(rng) * scale;
		for (float &c : centres_)
			c = gauss(rng);
	}

	// Point `index` of stream `stream` (0 = base, 1 = queries) into out.
	void point(std::uint64_t stream, std::uint64_t index, float *out) const
	{
		std::mt19937_64 rng(o_.seed ^ (stream << 40) ^ (index * 0x9e3779b97f4a7c15ull));
		std::normal_distribution<float> gauss;
		const float *centre = &centres_[(rng() % k_clusters) * k_latent];
		float z[k_latent];
		for (std::uint32_t j = 0; j < k_latent; ++j)
			z[j] = centre[j] + k_spread * gauss(rng);
		double norm = 0;
		for (std::uint32_t d = 0; d < o_.dim; ++d) {
			const float *w = &map_[std::size_t{d} * k_latent];
			float x = k_noise * gauss(rng);
			for (std::uint32_t j = 0; j < k_latent; ++j)
				x += w[j] * z[j];
			out[d] = x;
			norm += double(x) * x;
		}
		if (o_.metric == Metric::cosine)
			for (std::uint32_t d = 0; d < o_.dim; ++d)
				out[d] = float(out[d] / std::sqrt(norm));
	}

	Matrix<float> points(std::uint64_t stream, std::uint32_t first, std::uint32_t n) const
	{
		Matrix<float> m{o_.dim, std::vector<float>(std::size_t{n} * o_.dim)};
		for_each_parallel(n, [&](std::uint32_t i) { point(stream, first + i, &m.values[std::size_t{i} * o_.dim]); });
		return m;
	}

private:
	const Options &o_;
	std::vector<float> map_, centres_;
};

Matrix<std::int32_t>
ground_truth(const Options &o, const Matrix<float> &base, const Matrix<float> &queries)
{
	const engram::core::DistanceFn distance =
		engram::core::distance_kernels().get(o.metric, engram::core::Encoding::float32);
	Matrix<std::int32_t> truth{k_truth, std::vector<std::int32_t>(std::size_t{o.queries} * k_truth)};
	for_each_parallel(o.queries, [&](std::uint32_t q) {
		std::vector<std::pair<float, std::int32_t>> all(base.rows());
		for (std::size_t i = 0; i < base.rows(); ++i)
			all[i] = {distance(queries.row(q).data(), reinterpret_cast<const std::byte *>(base.row(i).data()), o.dim),
					  static_cast<std::int32_t>(i)};
		std::partial_sort(all.begin(), all.begin() + k_truth, all.end());
		for (std::uint32_t j = 0; j < k_truth; ++j)
			truth.values[std::size_t{q} * k_truth + j] = all[j].second;
	});
	return truth;
}

} // namespace

int
main(int argc, char **argv)
{
	const Options o = parse(argc, argv);
	const std::filesystem::path dir = std::filesystem::path(o.out) / o.name;
	std::filesystem::create_directories(dir);
	const std::string prefix = (dir / o.name).string();
	const Mixture mixture(o);
	const Matrix<float> base = mixture.points(0, o.first, o.rows);
	if (const std::string error = engram::core::write_fvecs(prefix + "_base.fvecs", base); !error.empty())
		die(error);
	if (o.queries > 0) {
		const Matrix<float> queries = mixture.points(1, 0, o.queries);
		const Matrix<std::int32_t> truth = ground_truth(o, base, queries);
		for (const std::string &error : {engram::core::write_fvecs(prefix + "_query.fvecs", queries),
										 engram::core::write_ivecs(prefix + "_groundtruth.ivecs", truth)})
			if (!error.empty())
				die(error);
	}
	std::printf("wrote %s: %u base vectors (from point %u) and %u queries of %u dimensions (%s)%s\n", prefix.c_str(),
				o.rows, o.first, o.queries, o.dim, o.metric == Metric::l2 ? "l2" : "cosine",
				o.queries > 0 ? ", exact top-100 ground truth" : "");
	return 0;
}
