// AVX2 + FMA (+ F16C for float16) kernels, 8 floats per lane group.
//
// Two independent accumulators hide the FMA latency; the last dim % 8
// components run through a scalar loop with the same arithmetic as the
// reference. The sq8 pair kernels widen 32 codes to 16-bit lanes and
// multiply-add them into 32-bit sums (vpmaddwd), with byte sums from
// vpsadbw. Every function carries its own target attribute and calls only
// intrinsics, so nothing here can leak AVX2 code into a shared inline
// function. Compiled to nothing on non-x86 targets.
#include "core/distance_kernels.hpp"

#if ENGRAM_X86_KERNELS

#include <immintrin.h>

#include <cstring>

#include "core/quantize.hpp"
#include "core/sq8_pair.hpp"

#define ENGRAM_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace engram::core {

namespace {

ENGRAM_AVX2 inline float
horizontal_sum(__m256 v) noexcept
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

ENGRAM_AVX2 inline __m256
load_half8(const std::byte *p) noexcept
{
	return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
}

ENGRAM_AVX2 inline __m256
load_sq8_8(const std::uint8_t *p, __m256 step, __m256 lo) noexcept
{
	const __m128i codes = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(p));
	return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(codes)), step, lo);
}

struct Sq8Params {
	float lo;
	float step;
};

inline Sq8Params
sq8_params(const std::byte *stored, std::uint32_t dim) noexcept
{
	Sq8Params p;
	std::memcpy(&p, stored + sq8_params_offset(dim), sizeof p);
	return p;
}

ENGRAM_AVX2 float
l2_f32(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	const auto *v = reinterpret_cast<const float *>(stored);
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	std::uint32_t i = 0;
	for (; i + 16 <= dim; i += 16) {
		const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(v + i));
		const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(v + i + 8));
		a0 = _mm256_fmadd_ps(d0, d0, a0);
		a1 = _mm256_fmadd_ps(d1, d1, a1);
	}
	if (i + 8 <= dim) {
		const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(v + i));
		a0 = _mm256_fmadd_ps(d, d, a0);
		i += 8;
	}
	float sum = horizontal_sum(_mm256_add_ps(a0, a1));
	for (; i < dim; ++i) {
		const float d = q[i] - v[i];
		sum += d * d;
	}
	return sum;
}

ENGRAM_AVX2 float
dot_f32(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	const auto *v = reinterpret_cast<const float *>(stored);
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	std::uint32_t i = 0;
	for (; i + 16 <= dim; i += 16) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(v + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(v + i + 8), a1);
	}
	if (i + 8 <= dim) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(v + i), a0);
		i += 8;
	}
	float sum = horizontal_sum(_mm256_add_ps(a0, a1));
	for (; i < dim; ++i)
		sum += q[i] * v[i];
	return 1.0f - sum;
}

ENGRAM_AVX2 float
l2_f16(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	std::uint32_t i = 0;
	for (; i + 16 <= dim; i += 16) {
		const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(q + i), load_half8(stored + 2 * i));
		const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 8), load_half8(stored + 2 * i + 16));
		a0 = _mm256_fmadd_ps(d0, d0, a0);
		a1 = _mm256_fmadd_ps(d1, d1, a1);
	}
	if (i + 8 <= dim) {
		const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(q + i), load_half8(stored + 2 * i));
		a0 = _mm256_fmadd_ps(d, d, a0);
		i += 8;
	}
	float sum = horizontal_sum(_mm256_add_ps(a0, a1));
	for (; i < dim; ++i) {
		std::uint16_t h;
		std::memcpy(&h, stored + 2 * i, 2);
		const float d = q[i] - _cvtsh_ss(h);
		sum += d * d;
	}
	return sum;
}

ENGRAM_AVX2 float
dot_f16(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	std::uint32_t i = 0;
	for (; i + 16 <= dim; i += 16) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_half8(stored + 2 * i), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load_half8(stored + 2 * i + 16), a1);
	}
	if (i + 8 <= dim) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_half8(stored + 2 * i), a0);
		i += 8;
	}
	float sum = horizontal_sum(_mm256_add_ps(a0, a1));
	for (; i < dim; ++i) {
		std::uint16_t h;
		std::memcpy(&h, stored + 2 * i, 2);
		sum += q[i] * _cvtsh_ss(h);
	}
	return 1.0f - sum;
}

ENGRAM_AVX2 float
l2_sq8(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	const Sq8Params p = sq8_params(stored, dim);
	const auto *codes = reinterpret_cast<const std::uint8_t *>(stored);
	const __m256 step = _mm256_set1_ps(p.step), lo = _mm256_set1_ps(p.lo);
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	std::uint32_t i = 0;
	for (; i + 16 <= dim; i += 16) {
		const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(q + i), load_sq8_8(codes + i, step, lo));
		const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 8), load_sq8_8(codes + i + 8, step, lo));
		a0 = _mm256_fmadd_ps(d0, d0, a0);
		a1 = _mm256_fmadd_ps(d1, d1, a1);
	}
	if (i + 8 <= dim) {
		const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(q + i), load_sq8_8(codes + i, step, lo));
		a0 = _mm256_fmadd_ps(d, d, a0);
		i += 8;
	}
	float sum = horizontal_sum(_mm256_add_ps(a0, a1));
	for (; i < dim; ++i) {
		const float d = q[i] - (static_cast<float>(codes[i]) * p.step + p.lo);
		sum += d * d;
	}
	return sum;
}

ENGRAM_AVX2 float
dot_sq8(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	const Sq8Params p = sq8_params(stored, dim);
	const auto *codes = reinterpret_cast<const std::uint8_t *>(stored);
	const __m256 step = _mm256_set1_ps(p.step), lo = _mm256_set1_ps(p.lo);
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	std::uint32_t i = 0;
	for (; i + 16 <= dim; i += 16) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_sq8_8(codes + i, step, lo), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load_sq8_8(codes + i + 8, step, lo), a1);
	}
	if (i + 8 <= dim) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_sq8_8(codes + i, step, lo), a0);
		i += 8;
	}
	float sum = horizontal_sum(_mm256_add_ps(a0, a1));
	for (; i < dim; ++i)
		sum += q[i] * (static_cast<float>(codes[i]) * p.step + p.lo);
	return 1.0f - sum;
}

ENGRAM_AVX2 void
half_to_floats(const std::byte *halves, float *out, std::uint32_t dim) noexcept
{
	std::uint32_t i = 0;
	for (; i + 8 <= dim; i += 8)
		_mm256_storeu_ps(out + i, load_half8(halves + 2 * std::size_t{i}));
	for (; i < dim; ++i) {
		std::uint16_t h;
		std::memcpy(&h, halves + 2 * std::size_t{i}, sizeof h);
		out[i] = _cvtsh_ss(h);
	}
}

ENGRAM_AVX2 inline std::int64_t
sum_epi32(__m256i v) noexcept
{
	alignas(32) std::int32_t lanes[8];
	_mm256_store_si256(reinterpret_cast<__m256i *>(lanes), v);
	std::int64_t sum = 0;
	for (const std::int32_t lane : lanes)
		sum += lane;
	return sum;
}

ENGRAM_AVX2 inline std::int64_t
sum_epi64(__m256i v) noexcept
{
	alignas(32) std::int64_t lanes[4];
	_mm256_store_si256(reinterpret_cast<__m256i *>(lanes), v);
	return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

// Sums of one pair of 32-code blocks, added to the running sums in 32- and
// 64-bit lanes.
struct PairLanes {
	__m256i a, b, ab, aa, bb;
};

template <bool squares>
ENGRAM_AVX2 inline void
add_pair_block(PairLanes &lanes, __m256i x, __m256i y) noexcept
{
	const __m256i zero = _mm256_setzero_si256();
	lanes.a = _mm256_add_epi64(lanes.a, _mm256_sad_epu8(x, zero));
	lanes.b = _mm256_add_epi64(lanes.b, _mm256_sad_epu8(y, zero));
	const __m256i x0 = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(x));
	const __m256i x1 = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(x, 1));
	const __m256i y0 = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(y));
	const __m256i y1 = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(y, 1));
	lanes.ab = _mm256_add_epi32(lanes.ab, _mm256_add_epi32(_mm256_madd_epi16(x0, y0), _mm256_madd_epi16(x1, y1)));
	if constexpr (squares) {
		lanes.aa = _mm256_add_epi32(lanes.aa, _mm256_add_epi32(_mm256_madd_epi16(x0, x0), _mm256_madd_epi16(x1, x1)));
		lanes.bb = _mm256_add_epi32(lanes.bb, _mm256_add_epi32(_mm256_madd_epi16(y0, y0), _mm256_madd_epi16(y1, y1)));
	}
}

template <bool squares>
ENGRAM_AVX2 Sq8PairSums
sq8_pair_sums(const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept
{
	const __m256i zero = _mm256_setzero_si256();
	PairLanes lanes{zero, zero, zero, zero, zero};
	std::uint32_t i = 0;
	for (; i + 32 <= dim; i += 32)
		add_pair_block<squares>(lanes, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(a + i)),
								_mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + i)));
	if (i < dim) {
		// Zero codes past dim add nothing to any sum.
		alignas(32) std::byte x[32] = {}, y[32] = {};
		std::memcpy(x, a + i, dim - i);
		std::memcpy(y, b + i, dim - i);
		add_pair_block<squares>(lanes, _mm256_load_si256(reinterpret_cast<const __m256i *>(x)),
								_mm256_load_si256(reinterpret_cast<const __m256i *>(y)));
	}
	Sq8PairSums s;
	s.a = sum_epi64(lanes.a);
	s.b = sum_epi64(lanes.b);
	s.ab = sum_epi32(lanes.ab);
	s.aa = sum_epi32(lanes.aa);
	s.bb = sum_epi32(lanes.bb);
	return s;
}

} // namespace

namespace kernels {

ENGRAM_AVX2 float
sq8_pair_l2_avx2(const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept
{
	return sq8_pair_l2_distance(sq8_pair_sums<true>(a, b, dim), a, b, dim);
}

ENGRAM_AVX2 float
sq8_pair_dot_avx2(const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept
{
	return sq8_pair_dot_distance(sq8_pair_sums<false>(a, b, dim), a, b, dim);
}

const DistanceKernels avx2_table{
	.level = SimdLevel::avx2,
	.l2 = {l2_f32, l2_f16, l2_sq8},
	.dot_distance = {dot_f32, dot_f16, dot_sq8},
	.sq8_pair_l2 = sq8_pair_l2_avx2,
	.sq8_pair_dot_distance = sq8_pair_dot_avx2,
	.half_to_floats = half_to_floats,
};

} // namespace kernels

} // namespace engram::core

#endif
