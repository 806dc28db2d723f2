// The per-level kernel tables behind distance_kernels(). Internal to the
// distance files: each table is a const object initialised with function
// addresses (constant initialisation, no constructor runs at load time), and
// each SIMD file compiles its kernels with per-function target attributes so
// no translation unit needs -m flags and no inline standard-library code is
// ever compiled for an instruction set the CPU may lack.
#pragma once

#include "core/distance.hpp"
#include "core/no_postgres.hpp"

#if defined(__x86_64__) || defined(__i386__)
#define ENGRAM_X86_KERNELS 1
#else
#define ENGRAM_X86_KERNELS 0
#endif

namespace engram::core::kernels {

extern const DistanceKernels scalar_table;
#if ENGRAM_X86_KERNELS
extern const DistanceKernels avx2_table;
extern const DistanceKernels avx512_table;
extern const DistanceKernels avx512_vnni_table;

// The AVX2 pair kernels, which the AVX-512F table shares (every AVX-512 CPU
// has AVX2, and AVX-512F alone has no byte arithmetic).
float sq8_pair_l2_avx2(const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept;
float sq8_pair_dot_avx2(const std::byte *a, const std::byte *b, std::uint32_t dim) noexcept;
#endif

} // namespace engram::core::kernels
