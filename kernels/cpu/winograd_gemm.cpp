// The micro-kernel of winograd_gemm.h: 4 rows × 64 columns of C in 16 vector accumulators; per
// step p, four vectors of B's row p and four broadcasts of A's column p, 16 fused multiply-adds.
#include "kernels/cpu/winograd_gemm.h"

#include <algorithm>

#include "kernels/cpu/simd.h"

namespace dp::kernels::cpu::winograd {

namespace {

using simd::kLanes;
using simd::load;
using simd::store;
using simd::Vec;

constexpr int kRows = 4, kMaxVectors = 4;

// c[0, rows) × [0, kLanes·NV) for the kRows rows of A at a0..a3 (rows past `rows` repeat the
// last valid one: computed, never stored). Four rows, up to four vectors: 16 accumulators, and few
// enough pointers that none of them spills (eight rows did: GCC ran out of general registers).
template <int NV>
__attribute__((always_inline)) inline void micro_kernel(const float* a0, const float* a1, const float* a2,
                                                        const float* a3, const float* b, int64_t ldb, float* c,
                                                        int64_t ldc, int rows, int64_t k) {
  Vec acc[kRows][NV] = {};
  for (int64_t p = 0; p < k; ++p) {
    Vec bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = load(b + p * ldb + j * kLanes);
    // a broadcast as x - 0 (exact for every x, so the compiler emits the broadcast alone)
    const Vec r0 = a0[p] - Vec{}, r1 = a1[p] - Vec{}, r2 = a2[p] - Vec{}, r3 = a3[p] - Vec{};
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      acc[0][j] += r0 * bv[j];
      acc[1][j] += r1 * bv[j];
      acc[2][j] += r2 * bv[j];
      acc[3][j] += r3 * bv[j];
    }
  }
  for (int i = 0; i < rows; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) store(c + i * ldc + j * kLanes, acc[i][j]);
}

}  // namespace

// a·b + c as one FMA is the point of the kernel, whatever the build's default.
DP_FMA_CLONES DP_FP_CONTRACT_FAST void gemm_rows(
    const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t m, int64_t n, int64_t k) {
  for (int64_t i0 = 0; i0 < m; i0 += kRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kRows, m - i0));
    auto row = [&](int i) { return a + (i0 + std::min(i, rows - 1)) * lda; };
    const float *a0 = row(0), *a1 = row(1), *a2 = row(2), *a3 = row(3);
    float* ci = c + i0 * ldc;
    int64_t j0 = 0;
    for (; j0 + kMaxVectors * kLanes <= n; j0 += kMaxVectors * kLanes)
      micro_kernel<4>(a0, a1, a2, a3, b + j0, ldb, ci + j0, ldc, rows, k);
    switch ((n - j0) / kLanes) {
      case 3: micro_kernel<3>(a0, a1, a2, a3, b + j0, ldb, ci + j0, ldc, rows, k); break;
      case 2: micro_kernel<2>(a0, a1, a2, a3, b + j0, ldb, ci + j0, ldc, rows, k); break;
      case 1: micro_kernel<1>(a0, a1, a2, a3, b + j0, ldb, ci + j0, ldc, rows, k); break;
      default: break;
    }
  }
}

}  // namespace dp::kernels::cpu::winograd
