// AVX-512F kernels, 16 floats per lane group.
//
// Two accumulators of 16 lanes each; the last dim % 16 components go through
// one masked step (float32 loads are masked directly; float16 and sq8 tails
// are copied into a zeroed 16-element buffer first, because masked loads of
// 8- and 16-bit elements would need AVX-512BW, and then masked to zero so the
// sq8 offset of the padding does not count). Only AVX-512F instructions are
// used, so any AVX-512 CPU runs them; that table shares the AVX2 sq8 pair
// kernels. A second table, for CPUs with AVX-512 VNNI (and BW), adds pair
// kernels that multiply 64 codes an instruction (vpdpbusd, unsigned by
// signed bytes: one side is shifted by -128 and the shift added back from
// its byte sum). Compiled to nothing on non-x86 targets.
#include "core/distance_kernels.hpp"

#if ENGRAM_X86_KERNELS

// GCC 12's _mm512_undefined_* helpers initialise a variable from itself, which
// -Wuninitialized reports at every inlined use; the value is meant to be
// undefined, so the warning says nothing about this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstring>

#include "core/quantize.hpp"
#include "core/sq8_pair.hpp"

#define ENGRAM_AVX512 __attribute__((target("avx512f")))
#define ENGRAM_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

namespace engram::core {

namespace {

ENGRAM_AVX512 inline __mmask16
tail_mask(std::uint32_t remaining) noexcept
{
	return static_cast<__mmask16>((1u << remaining) - 1u);
}

ENGRAM_AVX512 inline __m512
load_half16(const std::byte *p) noexcept
{
	return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
}

ENGRAM_AVX512 inline __m512
load_half_tail(const std::byte *p, std::uint32_t remaining) noexcept
{
	alignas(32) std::uint16_t buffer[16] = {};
	std::memcpy(buffer, p, 2 * std::size_t{remaining});
	return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i *>(buffer)));
}

ENGRAM_AVX512 inline __m512
load_sq8_16(const std::uint8_t *p, __m512 step, __m512 lo) noexcept
{
	const __m128i codes = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
	return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(codes)), step, lo);
}

ENGRAM_AVX512 inline __m512
load_sq8_tail(const std::uint8_t *p, std::uint32_t remaining, __m512 step, __m512 lo) noexcept
{
	alignas(16) std::uint8_t buffer[16] = {};
	std::memcpy(buffer, p, remaining);
	return load_sq8_16(buffer, step, lo);
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

ENGRAM_AVX512 float
l2_f32(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	const auto *v = reinterpret_cast<const float *>(stored);
	__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
	std::uint32_t i = 0;
	for (; i + 32 <= dim; i += 32) {
		const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(v + i));
		const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 16), _mm512_loadu_ps(v + i + 16));
		a0 = _mm512_fmadd_ps(d0, d0, a0);
		a1 = _mm512_fmadd_ps(d1, d1, a1);
	}
	if (i + 16 <= dim) {
		const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(v + i));
		a0 = _mm512_fmadd_ps(d, d, a0);
		i += 16;
	}
	if (i < dim) {
		const __mmask16 m = tail_mask(dim - i);
		const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_maskz_loadu_ps(m, v + i));
		a1 = _mm512_fmadd_ps(d, d, a1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

ENGRAM_AVX512 float
dot_f32(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	const auto *v = reinterpret_cast<const float *>(stored);
	__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
	std::uint32_t i = 0;
	for (; i + 32 <= dim; i += 32) {
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(v + i), a0);
		a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), _mm512_loadu_ps(v + i + 16), a1);
	}
	if (i + 16 <= dim) {
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(v + i), a0);
		i += 16;
	}
	if (i < dim) {
		const __mmask16 m = tail_mask(dim - i);
		a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_maskz_loadu_ps(m, v + i), a1);
	}
	return 1.0f - _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

ENGRAM_AVX512 float
l2_f16(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
	std::uint32_t i = 0;
	for (; i + 32 <= dim; i += 32) {
		const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(q + i), load_half16(stored + 2 * i));
		const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 16), load_half16(stored + 2 * i + 32));
		a0 = _mm512_fmadd_ps(d0, d0, a0);
		a1 = _mm512_fmadd_ps(d1, d1, a1);
	}
	if (i + 16 <= dim) {
		const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(q + i), load_half16(stored + 2 * i));
		a0 = _mm512_fmadd_ps(d, d, a0);
		i += 16;
	}
	if (i < dim) {
		const __mmask16 m = tail_mask(dim - i);
		const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, q + i), load_half_tail(stored + 2 * i, dim - i));
		a1 = _mm512_fmadd_ps(d, d, a1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

ENGRAM_AVX512 float
dot_f16(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
	std::uint32_t i = 0;
	for (; i + 32 <= dim; i += 32) {
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load_half16(stored + 2 * i), a0);
		a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), load_half16(stored + 2 * i + 32), a1);
	}
	if (i + 16 <= dim) {
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load_half16(stored + 2 * i), a0);
		i += 16;
	}
	if (i < dim) {
		const __mmask16 m = tail_mask(dim - i);
		a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), load_half_tail(stored + 2 * i, dim - i), a1);
	}
	return 1.0f - _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

ENGRAM_AVX512 float
l2_sq8(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	const Sq8Params p = sq8_params(stored, dim);
	const auto *codes = reinterpret_cast<const std::uint8_t *>(stored);
	const __m512 step = _mm512_set1_ps(p.step), lo = _mm512_set1_ps(p.lo);
	__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
	std::uint32_t i = 0;
	for (; i + 32 <= dim; i += 32) {
		const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(q + i), load_sq8_16(codes + i, step, lo));
		const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 16), load_sq8_16(codes + i + 16, step, lo));
		a0 = _mm512_fmadd_ps(d0, d0, a0);
		a1 = _mm512_fmadd_ps(d1, d1, a1);
	}
	if (i + 16 <= dim) {
		const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(q + i), load_sq8_16(codes + i, step, lo));
		a0 = _mm512_fmadd_ps(d, d, a0);
		i += 16;
	}
	if (i < dim) {
		const __mmask16 m = tail_mask(dim - i);
		const __m512 x = load_sq8_tail(codes + i, dim - i, step, lo);
		const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, q + i), x);
		a1 = _mm512_fmadd_ps(d, d, a1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

ENGRAM_AVX512 float
dot_sq8(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	const Sq8Params p = sq8_params(stored, dim);
	const auto *codes = reinterpret_cast<const std::uint8_t *>(stored);
	const __m512 step = _mm512_set1_ps(p.step), lo = _mm512_set1_ps(p.lo);
	__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
	std::uint32_t i = 0;
	for (; i + 32 <= dim; i += 32) {
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load_sq8_16(codes + i, step, lo), a0);
		a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), load_sq8_16(codes + i + 16, step, lo), a1);
	}
	if (i + 16 <= dim) {
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load_sq8_16(codes + i, step, lo), a0);
		i += 16;
	}
	if (i < dim) {
		// The masked query is zero past dim, so the decoded padding adds nothing.
		const __mmask16 m = tail_mask(dim - i);
		a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), load_sq8_tail(codes + i, dim - i, step, lo), a1);
	}
	return 1.0f - _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

ENGRAM_AVX512 void
half_to_floats(const std::byte *halves, float *out, std::uint32_t dim) noexcept
{
	std::uint32_t i = 0;
	for (; i + 16 <= dim; i += 16)
		_mm512_storeu_ps(out + i, load_half16(halves + 2 * std::size_t{i}));
	if (i < dim)
		_mm512_mask_storeu_ps(out + i, tail_mask(dim - i), load_half_tail(halves + 2 * std::size_t{i}, dim - i));
}

ENGRAM_AVX512_VNNI inline std::int64_t
sum_epi32(__m512i v) noexcept
{
	const __m512i low = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
	const __m512i high = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1));
	return _mm512_reduce_add_epi64(_mm512_add_epi64(low, high));
}

template <bool squares>
ENGRAM_AVX512_VNNI Sq8PairSums
sq8_pair_sums_vnni(const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept
{
	const __m512i zero = _mm512_setzero_si512();
	const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
	__m512i sa = zero, sb = zero, ab = zero, aa = zero, bb = zero;
	for (std::uint32_t i = 0; i < dim; i += 64) {
		// Codes past dim load as zero and add nothing to any sum.
		const std::uint32_t left = dim - i;
		const __mmask64 m = left >= 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
		const __m512i x = _mm512_maskz_loadu_epi8(m, a + i);
		const __m512i y = _mm512_maskz_loadu_epi8(m, b + i);
		sa = _mm512_add_epi64(sa, _mm512_sad_epu8(x, zero));
		sb = _mm512_add_epi64(sb, _mm512_sad_epu8(y, zero));
		const __m512i y_signed = _mm512_xor_si512(y, flip); // y - 128 as signed bytes
		ab = _mm512_dpbusd_epi32(ab, x, y_signed);
		if constexpr (squares) {
			aa = _mm512_dpbusd_epi32(aa, x, _mm512_xor_si512(x, flip));
			bb = _mm512_dpbusd_epi32(bb, y, y_signed);
		}
	}
	Sq8PairSums s;
	s.a = _mm512_reduce_add_epi64(sa);
	s.b = _mm512_reduce_add_epi64(sb);
	// sum x (y - 128) + 128 sum x = sum x y, and the same for the squares.
	s.ab = sum_epi32(ab) + 128 * s.a;
	if constexpr (squares) {
		s.aa = sum_epi32(aa) + 128 * s.a;
		s.bb = sum_epi32(bb) + 128 * s.b;
	}
	return s;
}

ENGRAM_AVX512_VNNI float
sq8_pair_l2_vnni(const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept
{
	return sq8_pair_l2_distance(sq8_pair_sums_vnni<true>(a, b, dim), a, b, dim);
}

ENGRAM_AVX512_VNNI float
sq8_pair_dot_vnni(const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept
{
	return sq8_pair_dot_distance(sq8_pair_sums_vnni<false>(a, b, dim), a, b, dim);
}

} // namespace

namespace kernels {
const DistanceKernels avx512_table{
	.level = SimdLevel::avx512,
	.l2 = {l2_f32, l2_f16, l2_sq8},
	.dot_distance = {dot_f32, dot_f16, dot_sq8},
	.sq8_pair_l2 = sq8_pair_l2_avx2,
	.sq8_pair_dot_distance = sq8_pair_dot_avx2,
	.half_to_floats = half_to_floats,
};

const DistanceKernels avx512_vnni_table{
	.level = SimdLevel::avx512_vnni,
	.l2 = {l2_f32, l2_f16, l2_sq8},
	.dot_distance = {dot_f32, dot_f16, dot_sq8},
	.sq8_pair_l2 = sq8_pair_l2_vnni,
	.sq8_pair_dot_distance = sq8_pair_dot_vnni,
	.half_to_floats = half_to_floats,
};
} // namespace kernels

} // namespace engram::core

#endif
