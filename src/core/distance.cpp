// Scalar reference kernels and the one-time choice of the SIMD table.
//
// The scalar kernels are both the fallback for CPUs without AVX2 and the
// reference the SIMD kernels are tested against, so they are written as the
// plainest possible loops. The choice of table happens on the first call of
// distance_kernels() through a function-local static const reference, which
// C++ initialises exactly once and thread-safely; afterwards it is read-only.
#include "core/distance.hpp"

#include <cmath>
#include <cstring>

#include "core/distance_kernels.hpp"
#include "core/quantize.hpp"
#include "core/sq8_pair.hpp"

#if ENGRAM_X86_KERNELS
#include <cpuid.h>
#endif

namespace engram::core {

namespace {

float
l2_f32_scalar(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	const auto *v = reinterpret_cast<const float *>(stored);
	float sum = 0.0f;
	for (std::uint32_t i = 0; i < dim; ++i) {
		const float d = q[i] - v[i];
		sum += d * d;
	}
	return sum;
}

float
dot_f32_scalar(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	const auto *v = reinterpret_cast<const float *>(stored);
	float sum = 0.0f;
	for (std::uint32_t i = 0; i < dim; ++i)
		sum += q[i] * v[i];
	return 1.0f - sum;
}

float
half_at(const std::byte *stored, std::uint32_t i) noexcept
{
	std::uint16_t h;
	std::memcpy(&h, stored + 2 * std::size_t{i}, 2);
	return half_to_float(h);
}

float
l2_f16_scalar(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	float sum = 0.0f;
	for (std::uint32_t i = 0; i < dim; ++i) {
		const float d = q[i] - half_at(stored, i);
		sum += d * d;
	}
	return sum;
}

float
dot_f16_scalar(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	float sum = 0.0f;
	for (std::uint32_t i = 0; i < dim; ++i)
		sum += q[i] * half_at(stored, i);
	return 1.0f - sum;
}

struct Sq8View {
	const std::uint8_t *codes;
	float lo;
	float step;
};

Sq8View
sq8_view(const std::byte *stored, std::uint32_t dim) noexcept
{
	Sq8View view{reinterpret_cast<const std::uint8_t *>(stored), 0.0f, 0.0f};
	const std::size_t params = sq8_params_offset(dim);
	std::memcpy(&view.lo, stored + params, sizeof(float));
	std::memcpy(&view.step, stored + params + sizeof(float), sizeof(float));
	return view;
}

float
l2_sq8_scalar(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	const Sq8View s = sq8_view(stored, dim);
	float sum = 0.0f;
	for (std::uint32_t i = 0; i < dim; ++i) {
		const float d = q[i] - (static_cast<float>(s.codes[i]) * s.step + s.lo);
		sum += d * d;
	}
	return sum;
}

float
dot_sq8_scalar(const float *q, const std::byte *stored, std::uint32_t dim) noexcept
{
	const Sq8View s = sq8_view(stored, dim);
	float sum = 0.0f;
	for (std::uint32_t i = 0; i < dim; ++i)
		sum += q[i] * (static_cast<float>(s.codes[i]) * s.step + s.lo);
	return 1.0f - sum;
}

void
half_to_floats_scalar(const std::byte *halves, float *out, std::uint32_t dim) noexcept
{
	for (std::uint32_t i = 0; i < dim; ++i)
		out[i] = half_at(halves, i);
}

Sq8PairSums
sq8_pair_sums_scalar(const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept
{
	const auto *x = reinterpret_cast<const std::uint8_t *>(a);
	const auto *y = reinterpret_cast<const std::uint8_t *>(b);
	Sq8PairSums s;
	for (std::uint32_t i = 0; i < dim; ++i) {
		s.a += x[i];
		s.b += y[i];
		s.ab += std::int64_t{x[i]} * y[i];
		s.aa += std::int64_t{x[i]} * x[i];
		s.bb += std::int64_t{y[i]} * y[i];
	}
	return s;
}

float
sq8_pair_l2_scalar(const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept
{
	return sq8_pair_l2_distance(sq8_pair_sums_scalar(a, b, dim), a, b, dim);
}

float
sq8_pair_dot_scalar(const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept
{
	return sq8_pair_dot_distance(sq8_pair_sums_scalar(a, b, dim), a, b, dim);
}

#if ENGRAM_X86_KERNELS
// F16C (CPUID leaf 1, ECX bit 29), asked of CPUID directly because not every
// compiler's __builtin_cpu_supports knows the feature.
bool
cpu_has_f16c() noexcept
{
	unsigned a = 0, b = 0, c = 0, d = 0;
	return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_F16C) != 0;
}
#endif

} // namespace

namespace kernels {
const DistanceKernels scalar_table{
	.level = SimdLevel::scalar,
	.l2 = {l2_f32_scalar, l2_f16_scalar, l2_sq8_scalar},
	.dot_distance = {dot_f32_scalar, dot_f16_scalar, dot_sq8_scalar},
	.sq8_pair_l2 = sq8_pair_l2_scalar,
	.sq8_pair_dot_distance = sq8_pair_dot_scalar,
	.half_to_floats = half_to_floats_scalar,
};
} // namespace kernels

bool
simd_level_supported(SimdLevel level) noexcept
{
#if ENGRAM_X86_KERNELS
	__builtin_cpu_init();
	switch (level) {
	case SimdLevel::scalar:
		return true;
	case SimdLevel::avx2:
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
	case SimdLevel::avx512:
		// Its table shares the AVX2 sq8 pair kernels and float16 decoding.
		return simd_level_supported(SimdLevel::avx2) && __builtin_cpu_supports("avx512f");
	case SimdLevel::avx512_vnni:
		return simd_level_supported(SimdLevel::avx512) && __builtin_cpu_supports("avx512bw") &&
			   __builtin_cpu_supports("avx512vnni");
	}
	return false;
#else
	return level == SimdLevel::scalar;
#endif
}

const DistanceKernels &
distance_kernels(SimdLevel level) noexcept
{
#if ENGRAM_X86_KERNELS
	switch (level) {
	case SimdLevel::scalar:
		break;
	case SimdLevel::avx2:
		return kernels::avx2_table;
	case SimdLevel::avx512:
		return kernels::avx512_table;
	case SimdLevel::avx512_vnni:
		return kernels::avx512_vnni_table;
	}
#endif
	(void) level;
	return kernels::scalar_table;
}

const DistanceKernels &
distance_kernels() noexcept
{
	static const DistanceKernels &best = []() -> const DistanceKernels & {
		for (SimdLevel level : {SimdLevel::avx512_vnni, SimdLevel::avx512, SimdLevel::avx2})
			if (simd_level_supported(level))
				return distance_kernels(level);
		return kernels::scalar_table;
	}();
	return best;
}

bool
normalize(std::span<const float> v, std::span<float> out) noexcept
{
	double sum = 0.0;
	for (float x : v)
		sum += static_cast<double>(x) * x;
	if (!(sum > 0.0) || !std::isfinite(sum))
		return false;
	const double inverse = 1.0 / std::sqrt(sum);
	for (std::size_t i = 0; i < v.size(); ++i)
		out[i] = static_cast<float>(v[i] * inverse);
	return true;
}

bool
all_finite(std::span<const float> v) noexcept
{
	for (float x : v)
		if (!std::isfinite(x))
			return false;
	return true;
}

} // namespace engram::core
