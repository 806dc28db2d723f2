// Distances between a float32 query and one stored vector, in every encoding
// the graph can store (float32, float16, 8-bit scalar quantized).
//
// Why one signature for all: a graph handle keeps one function pointer for its
// encoding (chosen when it attaches), so the search loop never branches on
// the metric or the encoding. A kernel reads `dim` values of its encoding at
// `stored`; for sq8 the per-vector offset and step follow the codes (see
// quantize.hpp for the layout).
//
// Kernel selection. Every kernel exists in a scalar, an AVX2+FMA(+F16C) and an
// AVX-512F variant, compiled with per-function target attributes so the
// library never needs -march flags. distance_kernels() detects the CPU once
// (a function-local static const reference: initialised once, never written
// again) and returns an immutable table; nothing here is a mutable global.
//
// Pair kernels measure one stored sq8 vector against another from integer
// sums of their codes (sq8_pair.hpp); linking an sq8 graph uses them, since
// the node it links is stored as codes too. On CPUs with AVX-512 VNNI they
// take 64 codes an instruction, which is a level of its own.
//
// Each table also converts float16 vectors to floats (F16C on AVX2 and
// AVX-512), which decode() uses: linking a float16 graph decodes every node
// it measures from.
//
// Conventions: smaller is closer. l2 is the squared Euclidean distance; inner
// product and cosine both return 1 - <q, v> (cosine callers normalise both
// sides first, which the graph does on store and on search).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/no_postgres.hpp"

namespace engram::core {

enum class Metric : std::uint8_t { l2 = 0, inner_product = 1, cosine = 2 };

enum class Encoding : std::uint8_t { float32 = 0, float16 = 1, sq8 = 2 };

enum class SimdLevel : std::uint8_t { scalar = 0, avx2 = 1, avx512 = 2, avx512_vnni = 3 };

inline constexpr std::size_t k_encoding_count = 3;

using DistanceFn = float (*)(const float *query, const std::byte *stored, std::uint32_t dim) noexcept;
using PairDistanceFn = float (*)(const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept;
using HalfDecodeFn = void (*)(const std::byte *halves, float *out, std::uint32_t dim) noexcept;

// One immutable table per SIMD level; the arrays are indexed by Encoding.
struct DistanceKernels {
	SimdLevel level;
	DistanceFn l2[k_encoding_count];
	DistanceFn dot_distance[k_encoding_count];
	PairDistanceFn sq8_pair_l2;
	PairDistanceFn sq8_pair_dot_distance;
	HalfDecodeFn half_to_floats;

	DistanceFn get(Metric metric, Encoding encoding) const noexcept
	{
		const auto e = static_cast<std::size_t>(encoding);
		return metric == Metric::l2 ? l2[e] : dot_distance[e];
	}
	PairDistanceFn sq8_pair(Metric metric) const noexcept
	{
		return metric == Metric::l2 ? sq8_pair_l2 : sq8_pair_dot_distance;
	}
};

// True when this CPU can run kernels of `level`.
bool simd_level_supported(SimdLevel level) noexcept;

// The table of one level (tests compare every level with the scalar one).
// The caller must check simd_level_supported() before calling its kernels.
const DistanceKernels &distance_kernels(SimdLevel level) noexcept;

// The fastest table this CPU supports, detected on first call.
const DistanceKernels &distance_kernels() noexcept;

// Writes v / |v| into out; false (out untouched) when |v| is zero or not finite.
bool normalize(std::span<const float> v, std::span<float> out) noexcept;

// True when every component is finite.
bool all_finite(std::span<const float> v) noexcept;

} // namespace engram::core
