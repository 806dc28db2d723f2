// Encodings of a stored vector: float32, float16 (IEEE binary16) and sq8.
//
// Why these: float32 is exact; float16 halves memory with about three
// significant digits, enough for graph traversal; sq8 quarters it. One
// million 768-d vectors take 3.0 GB as float32, 1.5 GB as float16 and 0.8 GB
// as sq8 (plus about 0.2 GB of graph), so the quantized encodings keep such a
// space well under 2 GB. Search over a quantized graph can re-rank its
// candidates with float32 vectors supplied by the caller (SearchParams).
//
// sq8 is per-vector affine 8-bit quantization: x[i] ~ lo + step * code[i],
// with lo = min(x) and step = (max(x) - min(x)) / 255. Per-vector (rather
// than per-dimension trained) parameters need no training pass, so vectors
// can be encoded the moment they arrive, which is what a streaming store
// needs. Layout: `dim` code bytes, padding to a multiple of 4, then float lo
// and float step.
//
// Everything here is pure computation on caller memory: no allocation, no
// state, safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/distance.hpp"
#include "core/no_postgres.hpp"

namespace engram::core {

// Bytes one encoded vector of `dim` components occupies.
constexpr std::size_t
encoded_bytes(Encoding encoding, std::uint32_t dim) noexcept
{
	switch (encoding) {
	case Encoding::float32:
		return std::size_t{dim} * 4;
	case Encoding::float16:
		return std::size_t{dim} * 2;
	case Encoding::sq8:
		break;
	}
	return ((std::size_t{dim} + 3) & ~std::size_t{3}) + 2 * sizeof(float);
}

// Offset of the sq8 (lo, step) pair after the codes.
constexpr std::size_t
sq8_params_offset(std::uint32_t dim) noexcept
{
	return (std::size_t{dim} + 3) & ~std::size_t{3};
}

// IEEE binary16 conversions, round to nearest even; overflow becomes infinity.
std::uint16_t float_to_half(float f) noexcept;
float half_to_float(std::uint16_t h) noexcept;

// 1 / |v| as the graph scales a vector under cosine (the sum of squares in
// double), so that others can reproduce the bytes it stores.
float unit_scale(std::span<const float> v) noexcept;

// Writes encoded_bytes(encoding, v.size()) bytes at out, encoding v * scale
// (the graph passes unit_scale(v) under cosine, so it needs no normalised copy).
void encode(Encoding encoding, std::span<const float> v, std::byte *out, float scale = 1.0f) noexcept;

// Reads out.size() components encoded at in.
void decode(Encoding encoding, const std::byte *in, std::span<float> out) noexcept;

} // namespace engram::core
