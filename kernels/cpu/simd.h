// Portable 16-lane float vectors for the CPU kernels that vectorise by hand (Winograd's
// transforms, the 3×3 max pool): GCC vector extensions, compiled for AVX-512, AVX2 and plain
// x86-64 by target_clones and chosen at load time, so one binary runs on any x86-64.
#pragma once
#include <cstdint>
#include <cstring>

namespace dp::kernels::cpu::simd {

// Vec values only live inside always-inlined helpers and clone bodies, never cross a call
// boundary, so GCC's note that a 64-byte vector argument's ABI depends on AVX-512 does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

constexpr int kLanes = 16;
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t IVec __attribute__((vector_size(kLanes * sizeof(int32_t))));

__attribute__((always_inline)) inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
__attribute__((always_inline)) inline void store(float* p, const Vec& v) { std::memcpy(p, &v, sizeof v); }
__attribute__((always_inline)) inline void store(int32_t* p, const IVec& v) { std::memcpy(p, &v, sizeof v); }

}  // namespace dp::kernels::cpu::simd

// Clang (the fuzz build) does not multiversion templates: it builds the plain version only.
#if defined(__clang__)
#define DP_VECTOR_CLONES
#else
#define DP_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

// For kernels built on fused multiply-adds: GCC's avx2 target does not include FMA, Haswell's does;
// and a·b + c fused whatever the build's -ffp-contract (clang fuses within a statement by default).
#if defined(__clang__)
#define DP_FMA_CLONES
#define DP_FP_CONTRACT_FAST
#else
#define DP_FMA_CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#define DP_FP_CONTRACT_FAST __attribute__((optimize("fp-contract=fast")))
#endif
