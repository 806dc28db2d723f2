// Distances between two sq8 vectors from integer sums of their codes.
//
// Why: linking a node into an sq8 graph measures it against hundreds of other
// stored nodes, and the node is itself stored as codes. Decoding both sides
// to floats costs a conversion and a multiply-add per component; with
// x = lo_x + step_x * code_x, every distance is instead a few exact integer
// sums over the codes (sum a, sum b, sum a*b, and for l2 sum a*a, sum b*b),
// which SIMD computes on 16 to 64 codes an instruction, combined once in
// double. The result is the distance between the decoded vectors, the same
// values the float kernels see, up to rounding.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/no_postgres.hpp"
#include "core/quantize.hpp"

namespace engram::core {

// Exact sums over the codes of two vectors. Kernels accumulate them in 32-bit
// SIMD lanes: at k_hnsw_max_dim (65,535) components a lane's share stays
// below 2^31.
struct Sq8PairSums {
	std::int64_t a = 0;
	std::int64_t b = 0;
	std::int64_t ab = 0;
	std::int64_t aa = 0; // l2 only
	std::int64_t bb = 0; // l2 only
};

struct Sq8Affine {
	double lo;
	double step;
};

inline Sq8Affine
sq8_affine(const std::byte *stored, std::uint32_t dim) noexcept
{
	float p[2];
	std::memcpy(p, stored + sq8_params_offset(dim), sizeof p);
	return {p[0], p[1]};
}

// 1 - <x, y>, the dot distance of the decoded vectors.
inline float
sq8_pair_dot_distance(const Sq8PairSums &s, const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept
{
	const Sq8Affine x = sq8_affine(a, dim), y = sq8_affine(b, dim);
	const double dot = double(dim) * x.lo * y.lo + x.lo * y.step * double(s.b) + y.lo * x.step * double(s.a) +
					   x.step * y.step * double(s.ab);
	return static_cast<float>(1.0 - dot);
}

// |x - y|^2 of the decoded vectors, expanded around lo_x - lo_y. Two
// vectors with the same offset and step (copies of one point above all)
// differ only in their codes: sum (a - b)^2 is then exact in integers, so a
// copy is at distance exactly 0, which the neighbour heuristic relies on
// (the expansion in floating point, contracted into FMAs by the compiler,
// would leave a rounding residue).
inline float
sq8_pair_l2_distance(const Sq8PairSums &s, const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept
{
	if (std::memcmp(a + sq8_params_offset(dim), b + sq8_params_offset(dim), 2 * sizeof(float)) == 0) {
		const double step = sq8_affine(a, dim).step;
		return static_cast<float>(step * step * double(s.aa + s.bb - 2 * s.ab));
	}
	const Sq8Affine x = sq8_affine(a, dim), y = sq8_affine(b, dim);
	const double shift = x.lo - y.lo;
	const double l2 = double(dim) * shift * shift + x.step * x.step * double(s.aa) + y.step * y.step * double(s.bb) +
					  2.0 * shift * (x.step * double(s.a) - y.step * double(s.b)) -
					  2.0 * x.step * y.step * double(s.ab);
	return l2 > 0.0 ? static_cast<float>(l2) : 0.0f;
}

} // namespace engram::core
