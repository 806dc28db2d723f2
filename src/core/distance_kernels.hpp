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
#endif

} // namespace engram::core::kernels
