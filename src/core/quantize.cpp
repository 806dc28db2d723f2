// Scalar encoders and decoders. Encoding runs once per stored vector, so a
// plain loop is enough. Decoding runs on the insert path, for every node a
// float16 link measures from, where a scalar half conversion took a third of
// the build: float16 is decoded by the distance table's F16C conversion
// (distance.hpp). The hot asymmetric distances that read encoded vectors
// directly live in the distance kernels.
#include "core/quantize.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <utility>

namespace engram::core {

std::uint16_t
float_to_half(float f) noexcept
{
	// Round to nearest even by integer arithmetic on the float bits; values
	// too small for a normal half are rounded by one float addition that
	// places the half's last mantissa bit at the float's last bit.
	constexpr std::uint32_t f32_infinity = 255u << 23;
	constexpr std::uint32_t f16_overflow = (127u + 16u) << 23;
	constexpr std::uint32_t subnormal_magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;
	std::uint32_t u = std::bit_cast<std::uint32_t>(f);
	const std::uint32_t sign = u & 0x80000000u;
	u ^= sign;
	std::uint32_t half;
	if (u >= f16_overflow) {
		half = u > f32_infinity ? 0x7e00u : 0x7c00u;
	} else if (u < (113u << 23)) {
		const float shifted = std::bit_cast<float>(u) + std::bit_cast<float>(subnormal_magic_bits);
		half = std::bit_cast<std::uint32_t>(shifted) - subnormal_magic_bits;
	} else {
		const std::uint32_t mantissa_odd = (u >> 13) & 1u;
		u += (static_cast<std::uint32_t>(15 - 127) << 23) + 0xfffu + mantissa_odd;
		half = u >> 13;
	}
	return static_cast<std::uint16_t>(half | (sign >> 16));
}

float
half_to_float(std::uint16_t h) noexcept
{
	const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
	const std::uint32_t exponent = (h >> 10) & 0x1fu;
	const std::uint32_t mantissa = h & 0x3ffu;
	if (exponent == 0) {
		const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
		return sign != 0 ? -magnitude : magnitude;
	}
	if (exponent == 31)
		return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
	return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

float
unit_scale(std::span<const float> v) noexcept
{
	double sum = 0.0;
	for (float x : v)
		sum += static_cast<double>(x) * x;
	return static_cast<float>(1.0 / std::sqrt(sum));
}

void
encode(Encoding encoding, std::span<const float> v, std::byte *out, float scale) noexcept
{
	const auto dim = static_cast<std::uint32_t>(v.size());
	switch (encoding) {
	case Encoding::float32:
		if (scale == 1.0f) {
			std::memcpy(out, v.data(), v.size_bytes());
			return;
		}
		for (std::uint32_t i = 0; i < dim; ++i) {
			const float x = v[i] * scale;
			std::memcpy(out + 4 * std::size_t{i}, &x, 4);
		}
		return;
	case Encoding::float16:
		for (std::uint32_t i = 0; i < dim; ++i) {
			const std::uint16_t h = float_to_half(v[i] * scale);
			std::memcpy(out + 2 * std::size_t{i}, &h, 2);
		}
		return;
	case Encoding::sq8:
		break;
	}
	const auto [lo_it, hi_it] = std::minmax_element(v.begin(), v.end());
	float lo = dim == 0 ? 0.0f : *lo_it * scale;
	float hi = dim == 0 ? 0.0f : *hi_it * scale;
	if (scale < 0.0f)
		std::swap(lo, hi);
	const float step = (hi - lo) / 255.0f;
	const float inverse = step > 0.0f ? 1.0f / step : 0.0f;
	auto *codes = reinterpret_cast<std::uint8_t *>(out);
	for (std::uint32_t i = 0; i < dim; ++i) {
		const float q = std::nearbyint((v[i] * scale - lo) * inverse);
		codes[i] = static_cast<std::uint8_t>(std::clamp(q, 0.0f, 255.0f));
	}
	const std::size_t params = sq8_params_offset(dim);
	std::memset(out + dim, 0, params - dim);
	std::memcpy(out + params, &lo, sizeof lo);
	std::memcpy(out + params + sizeof lo, &step, sizeof step);
}

void
decode(Encoding encoding, const std::byte *in, std::span<float> out) noexcept
{
	const auto dim = static_cast<std::uint32_t>(out.size());
	switch (encoding) {
	case Encoding::float32:
		std::memcpy(out.data(), in, out.size_bytes());
		return;
	case Encoding::float16:
		distance_kernels().half_to_floats(in, out.data(), dim);
		return;
	case Encoding::sq8:
		break;
	}
	float lo, step;
	const std::size_t params = sq8_params_offset(dim);
	std::memcpy(&lo, in + params, sizeof lo);
	std::memcpy(&step, in + params + sizeof lo, sizeof step);
	const auto *codes = reinterpret_cast<const std::uint8_t *>(in);
	for (std::uint32_t i = 0; i < dim; ++i)
		out[i] = static_cast<float>(codes[i]) * step + lo;
}

} // namespace engram::core
