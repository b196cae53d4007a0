// C = A·B for the Winograd products [K×C]·[C×tiles]: our own micro-kernel instead of OpenBLAS.
//
// OpenBLAS copies both operands into its packed layouts and zeroes C on every call; for the
// Winograd domain's many mid-sized products (16 per block of tiles) those copies and the zeroing
// were ~15 % of a ResNet-18 training step. Here neither operand is copied: a panel of 8 rows of A
// (the transformed filters, 8·C floats) stays in L1 while the kernel walks B (the block's
// transformed tiles) in strips of 32 columns, reading B's rows in place (row-major, n a multiple of
// 16, which the tiling guarantees) and writing C once.
//
// Rounding: each element is one fused multiply-add chain over k in order (a·b + c rounded once
// per step where the CPU has FMA), the same for every thread count and every n: a column's
// result does not depend on the other columns (an image's result not on the rest of its batch).
#pragma once
#include <cstdint>

namespace dp::kernels::cpu::winograd {

// c[i][j] = Σ_p a[i][p]·b[p][j] for i < m, j < n (n % 16 == 0), row-major with leading
// dimensions lda, ldb, ldc; c is overwritten.
void gemm_rows(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t m,
               int64_t n, int64_t k);

}  // namespace dp::kernels::cpu::winograd
