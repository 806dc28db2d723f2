// Every SIMD kernel this CPU can run agrees with the scalar reference for
// every encoding and metric, including dimensions that leave a tail after the
// last full vector register; the scalar kernels agree with a double-precision
// computation; the sq8 pair kernels of every level give the distance of the
// two decoded vectors (a copy exactly 0); every level decodes float16 exactly
// as the scalar decoder does; the start-up choice picks the best supported
// level.
#include "core/distance.hpp"
#include "core/quantize.hpp"
#include "core/sq8_pair.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace engram::core {
namespace {

std::vector<float>
random_vector(std::mt19937 &rng, std::uint32_t dim, float lo, float hi)
{
	std::uniform_real_distribution<float> u(lo, hi);
	std::vector<float> v(dim);
	for (float &x : v)
		x = u(rng);
	return v;
}

std::vector<std::uint32_t>
test_dims()
{
	std::vector<std::uint32_t> dims;
	for (std::uint32_t d = 1; d <= 70; ++d)
		dims.push_back(d);
	for (std::uint32_t d : {95u, 96u, 97u, 100u, 127u, 128u, 129u, 255u, 300u, 767u, 768u, 784u, 1001u})
		dims.push_back(d);
	return dims;
}

std::vector<SimdLevel>
supported_levels()
{
	std::vector<SimdLevel> levels;
	for (SimdLevel l : {SimdLevel::scalar, SimdLevel::avx2, SimdLevel::avx512, SimdLevel::avx512_vnni})
		if (simd_level_supported(l))
			levels.push_back(l);
	return levels;
}

// Kernels sum in different orders; allow a relative error scaled by the
// magnitude of the terms, not of the (possibly cancelling) result.
void
expect_close(float got, float want, double magnitude, const char *what, std::uint32_t dim)
{
	EXPECT_NEAR(got, want, 1e-5 * magnitude + 1e-6) << what << " dim " << dim;
}

TEST(Distance, ScalarKernelsMatchDoublePrecision)
{
	std::mt19937 rng(1);
	const DistanceKernels &scalar = distance_kernels(SimdLevel::scalar);
	for (std::uint32_t dim : test_dims()) {
		const auto q = random_vector(rng, dim, -1.0f, 1.0f);
		const auto v = random_vector(rng, dim, -1.0f, 1.0f);
		double l2 = 0.0, dot = 0.0, magnitude = 0.0;
		for (std::uint32_t i = 0; i < dim; ++i) {
			l2 += (double(q[i]) - v[i]) * (double(q[i]) - v[i]);
			dot += double(q[i]) * v[i];
			magnitude += std::abs(double(q[i]) * v[i]);
		}
		const auto *bytes = reinterpret_cast<const std::byte *>(v.data());
		const auto f32 = static_cast<std::size_t>(Encoding::float32);
		expect_close(scalar.l2[f32](q.data(), bytes, dim), float(l2), l2, "l2", dim);
		expect_close(scalar.dot_distance[f32](q.data(), bytes, dim), float(1.0 - dot), magnitude + 1.0, "dot", dim);
	}
}

TEST(Distance, SimdKernelsMatchScalarForEveryEncodingAndOddDimensions)
{
	const DistanceKernels &scalar = distance_kernels(SimdLevel::scalar);
	for (SimdLevel level : supported_levels()) {
		const DistanceKernels &k = distance_kernels(level);
		ASSERT_EQ(k.level, level);
		std::mt19937 rng(7);
		for (std::uint32_t dim : test_dims()) {
			const auto q = random_vector(rng, dim, -2.0f, 2.0f);
			const auto v = random_vector(rng, dim, -2.0f, 2.0f);
			double l2_magnitude = 0.0, dot_magnitude = 1.0;
			for (std::uint32_t i = 0; i < dim; ++i) {
				l2_magnitude += (double(q[i]) - v[i]) * (double(q[i]) - v[i]);
				dot_magnitude += std::abs(double(q[i]) * v[i]);
			}
			for (Encoding e : {Encoding::float32, Encoding::float16, Encoding::sq8}) {
				// Guard bytes after the vector: a kernel must not depend on them.
				std::vector<std::byte> stored(encoded_bytes(e, dim) + 64, std::byte{0x7f});
				encode(e, v, stored.data());
				const auto i = static_cast<std::size_t>(e);
				expect_close(k.l2[i](q.data(), stored.data(), dim), scalar.l2[i](q.data(), stored.data(), dim),
							 l2_magnitude * 4, "l2", dim);
				expect_close(k.dot_distance[i](q.data(), stored.data(), dim),
							 scalar.dot_distance[i](q.data(), stored.data(), dim), dot_magnitude * 4, "dot", dim);
			}
		}
	}
}

// Two stored sq8 vectors, measured code to code, are as far apart as their
// decoded floats: the pair kernels replace decode-then-measure when linking.
TEST(Distance, Sq8PairKernelsMeasureTheDecodedVectors)
{
	const DistanceKernels &scalar = distance_kernels(SimdLevel::scalar);
	const auto sq8 = static_cast<std::size_t>(Encoding::sq8);
	for (SimdLevel level : supported_levels()) {
		const DistanceKernels &k = distance_kernels(level);
		std::mt19937 rng(11);
		std::vector<std::uint32_t> dims = test_dims();
		dims.push_back(4096);
		for (std::uint32_t dim : dims) {
			// Different ranges give the two vectors different lo and step.
			const auto a = random_vector(rng, dim, -2.0f, 1.0f);
			const auto b = random_vector(rng, dim, -0.5f, 3.0f);
			std::vector<std::byte> x(encoded_bytes(Encoding::sq8, dim) + 64, std::byte{0xff});
			std::vector<std::byte> y(encoded_bytes(Encoding::sq8, dim) + 64, std::byte{0xff});
			encode(Encoding::sq8, a, x.data());
			encode(Encoding::sq8, b, y.data());
			std::vector<float> decoded(dim);
			decode(Encoding::sq8, x.data(), decoded);
			double l2_magnitude = 0.0, dot_magnitude = 1.0;
			for (std::uint32_t i = 0; i < dim; ++i) {
				l2_magnitude += double(decoded[i]) * decoded[i] + double(b[i]) * b[i];
				dot_magnitude += std::abs(double(decoded[i]) * b[i]);
			}
			expect_close(k.sq8_pair_l2(x.data(), y.data(), dim), scalar.l2[sq8](decoded.data(), y.data(), dim),
						 l2_magnitude, "pair l2", dim);
			expect_close(k.sq8_pair_dot_distance(x.data(), y.data(), dim),
						 scalar.dot_distance[sq8](decoded.data(), y.data(), dim), dot_magnitude, "pair dot", dim);
			// A copy is at distance exactly 0 (the neighbour heuristic keeps one
			// copy of a point by that), and a vector with the same offset and step
			// is measured exactly from its codes.
			EXPECT_EQ(k.sq8_pair_l2(x.data(), x.data(), dim), 0.0f) << "dim " << dim;
			std::vector<std::byte> z = x;
			z[0] = static_cast<std::byte>(std::to_integer<unsigned>(z[0]) ^ 1u);
			const double step = sq8_affine(x.data(), dim).step;
			EXPECT_EQ(k.sq8_pair_l2(x.data(), z.data(), dim), static_cast<float>(step * step)) << "dim " << dim;
		}
		EXPECT_EQ(k.sq8_pair(Metric::l2), k.sq8_pair_l2);
		EXPECT_EQ(k.sq8_pair(Metric::cosine), k.sq8_pair_dot_distance);
	}
}

// The SIMD float16 conversions (F16C), which decode() uses, give exactly what
// the scalar conversion gives, tails included.
TEST(Distance, HalfDecodingMatchesTheScalarDecoder)
{
	for (SimdLevel level : supported_levels()) {
		const DistanceKernels &k = distance_kernels(level);
		std::mt19937 rng(13);
		for (std::uint32_t dim : test_dims()) {
			// Some components overflow to infinity, every seventh is subnormal as a half.
			auto v = random_vector(rng, dim, -70000.0f, 70000.0f);
			for (std::uint32_t i = 0; i < dim; i += 7)
				v[i] *= 1e-9f;
			std::vector<std::byte> halves(encoded_bytes(Encoding::float16, dim));
			encode(Encoding::float16, v, halves.data());
			std::vector<float> want(dim), got(dim + 1, -1.0f);
			distance_kernels(SimdLevel::scalar).half_to_floats(halves.data(), want.data(), dim);
			k.half_to_floats(halves.data(), got.data(), dim);
			for (std::uint32_t i = 0; i < dim; ++i)
				ASSERT_EQ(got[i], want[i]) << "level " << int(level) << " dim " << dim << " at " << i;
			EXPECT_EQ(got[dim], -1.0f) << "wrote past dim " << dim;
		}
	}
}

TEST(Distance, MetricSelectsKernel)
{
	const DistanceKernels &k = distance_kernels();
	EXPECT_EQ(k.get(Metric::l2, Encoding::float16), k.l2[1]);
	EXPECT_EQ(k.get(Metric::cosine, Encoding::sq8), k.dot_distance[2]);
	EXPECT_EQ(k.get(Metric::inner_product, Encoding::float32), k.dot_distance[0]);
}

TEST(Distance, StartupChoiceIsTheBestSupportedLevel)
{
	const SimdLevel chosen = distance_kernels().level;
	EXPECT_TRUE(simd_level_supported(chosen));
	for (SimdLevel l : {SimdLevel::avx2, SimdLevel::avx512, SimdLevel::avx512_vnni}) {
		if (static_cast<int>(l) > static_cast<int>(chosen)) {
			EXPECT_FALSE(simd_level_supported(l));
		}
	}
	// Asking again returns the same immutable table.
	EXPECT_EQ(&distance_kernels(), &distance_kernels());
}

TEST(Distance, NormalizeAndFiniteChecks)
{
	std::vector<float> v{3.0f, 4.0f}, out(2);
	ASSERT_TRUE(normalize(v, out));
	EXPECT_FLOAT_EQ(out[0], 0.6f);
	EXPECT_FLOAT_EQ(out[1], 0.8f);
	std::vector<float> zero{0.0f, 0.0f};
	EXPECT_FALSE(normalize(zero, out));
	EXPECT_TRUE(all_finite(v));
	std::vector<float> bad{1.0f, std::nanf("")};
	EXPECT_FALSE(all_finite(bad));
	bad[1] = INFINITY;
	EXPECT_FALSE(all_finite(bad));
}

} // namespace
} // namespace engram::core
