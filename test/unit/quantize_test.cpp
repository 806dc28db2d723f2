// float16 conversion is exact where it must be and rounds to nearest even;
// sq8 reconstructs every component within half a step; the stored sizes make
// one million 768-d vectors fit well under 2 GB in a graph.
#include "core/quantize.hpp"

#include "core/arena.hpp"
#include "core/hnsw_graph.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <vector>

namespace engram::core {
namespace {

TEST(Half, ExactValuesAndSpecials)
{
	EXPECT_EQ(float_to_half(0.0f), 0x0000);
	EXPECT_EQ(float_to_half(-0.0f), 0x8000);
	EXPECT_EQ(float_to_half(1.0f), 0x3c00);
	EXPECT_EQ(float_to_half(-2.0f), 0xc000);
	EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
	EXPECT_EQ(float_to_half(0x1p-24f), 0x0001); // smallest subnormal
	EXPECT_EQ(float_to_half(0x1p-14f), 0x0400); // smallest normal
	EXPECT_EQ(float_to_half(1e6f), 0x7c00);     // overflow to infinity
	EXPECT_EQ(float_to_half(-INFINITY), 0xfc00);
	EXPECT_EQ(float_to_half(std::nanf("")) & 0x7e00, 0x7e00);
	EXPECT_TRUE(std::isnan(half_to_float(0x7e00)));
	EXPECT_EQ(half_to_float(0x7c00), INFINITY);
}

TEST(Half, RoundsToNearestEven)
{
	// 1 + 2^-11 lies halfway between 1 and the next half (1 + 2^-10): ties go to even (1).
	EXPECT_EQ(float_to_half(1.0f + 0x1p-11f), 0x3c00);
	// 1 + 3 * 2^-11 lies halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even).
	EXPECT_EQ(float_to_half(1.0f + 3 * 0x1p-11f), 0x3c02);
	EXPECT_EQ(float_to_half(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
	// Subnormal halfway case: 1.5 * 2^-24 rounds to 2 * 2^-24 (even).
	EXPECT_EQ(float_to_half(1.5f * 0x1p-24f), 0x0002);
}

TEST(Half, EveryFiniteHalfRoundTrips)
{
	for (std::uint32_t h = 0; h < 0x10000; ++h) {
		if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0)
			continue; // NaN payloads are not preserved
		EXPECT_EQ(float_to_half(half_to_float(static_cast<std::uint16_t>(h))), h) << std::hex << h;
	}
}

TEST(Encode, Float16RelativeErrorWithinHalfUlp)
{
	std::mt19937 rng(3);
	std::uniform_real_distribution<float> u(-100.0f, 100.0f);
	std::vector<float> v(1000), back(1000);
	for (float &x : v)
		x = u(rng);
	std::vector<std::byte> stored(encoded_bytes(Encoding::float16, 1000));
	encode(Encoding::float16, v, stored.data());
	decode(Encoding::float16, stored.data(), back);
	for (std::size_t i = 0; i < v.size(); ++i)
		EXPECT_LE(std::abs(back[i] - v[i]), std::abs(v[i]) * 0x1p-11f + 0x1p-24f);
}

TEST(Encode, Sq8ErrorWithinHalfStep)
{
	std::mt19937 rng(5);
	for (std::uint32_t dim : {1u, 3u, 17u, 100u, 768u, 4096u}) {
		std::uniform_real_distribution<float> u(-3.0f, 7.0f);
		std::vector<float> v(dim), back(dim);
		for (float &x : v)
			x = u(rng);
		std::vector<std::byte> stored(encoded_bytes(Encoding::sq8, dim));
		encode(Encoding::sq8, v, stored.data());
		decode(Encoding::sq8, stored.data(), back);
		const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
		const float step = (*hi - *lo) / 255.0f;
		for (std::uint32_t i = 0; i < dim; ++i)
			EXPECT_LE(std::abs(back[i] - v[i]), step * 0.5f + 1e-5f) << "dim " << dim;
	}
	// A constant vector decodes exactly.
	std::vector<float> flat(10, 2.5f), back(10);
	std::vector<std::byte> stored(encoded_bytes(Encoding::sq8, 10));
	encode(Encoding::sq8, flat, stored.data());
	decode(Encoding::sq8, stored.data(), back);
	EXPECT_EQ(back, flat);
}

TEST(Encode, ScaleIsAppliedBeforeEncoding)
{
	std::vector<float> v{2.0f, -4.0f, 8.0f}, back(3);
	for (Encoding e : {Encoding::float32, Encoding::float16, Encoding::sq8}) {
		std::vector<std::byte> stored(encoded_bytes(e, 3));
		encode(e, v, stored.data(), 0.25f);
		decode(e, stored.data(), back);
		EXPECT_NEAR(back[0], 0.5f, 0.02f);
		EXPECT_NEAR(back[1], -1.0f, 0.02f);
		EXPECT_NEAR(back[2], 2.0f, 0.02f);
	}
}

TEST(Encode, Sizes)
{
	EXPECT_EQ(encoded_bytes(Encoding::float32, 768), 3072u);
	EXPECT_EQ(encoded_bytes(Encoding::float16, 768), 1536u);
	EXPECT_EQ(encoded_bytes(Encoding::sq8, 768), 776u);
	EXPECT_EQ(encoded_bytes(Encoding::sq8, 5), 16u);
}

struct alignas(64) Line {
	std::byte b[64];
};

// Bytes per node of a 768-d graph (m = 16) once its chunks are exactly full,
// so no over-allocation from chunk doubling blurs the figure.
double
bytes_per_node(Encoding encoding)
{
	constexpr std::uint32_t nodes = 3 * 1024; // chunks of 1024 and 2048 nodes
	std::vector<Line> memory((64u << 20) / sizeof(Line));
	Arena arena = Arena::create(reinterpret_cast<std::byte *>(memory.data()), memory.size() * sizeof(Line));
	HnswConfig config;
	config.dim = 768;
	config.encoding = encoding;
	std::uint64_t offset = 0;
	EXPECT_EQ(HnswGraph::create(arena, config, offset), HnswStatus::ok);
	HnswGraph graph(arena, offset);
	std::mt19937 rng(9);
	std::normal_distribution<float> normal;
	std::vector<float> vectors(std::size_t{nodes} * 768);
	for (float &x : vectors)
		x = normal(rng);
	std::vector<std::uint64_t> generations(nodes, 1);
	std::uint32_t first = 0;
	EXPECT_EQ(graph.append_batch(vectors, generations, first), HnswStatus::ok);
	return static_cast<double>(graph.memory_bytes()) / nodes;
}

TEST(Encode, OneMillion768dVectorsFitWellUnderTwoGigabytes)
{
	const double f16 = bytes_per_node(Encoding::float16);
	const double sq8 = bytes_per_node(Encoding::sq8);
	EXPECT_LT(f16 * 1e6, 1.85e9) << f16 << " bytes per node";
	EXPECT_LT(sq8 * 1e6, 1.1e9) << sq8 << " bytes per node";
	EXPECT_GT(bytes_per_node(Encoding::float32) * 1e6, 3.0e9);
}

} // namespace
} // namespace engram::core
