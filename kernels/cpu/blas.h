// Typed OpenBLAS calls shared by the CPU kernels (row-major).
//
// OpenBLAS runs single-threaded: the CPU kernels parallelise over images or rows on dp's own
// pool, which keeps the work split, and therefore the results, independent of OpenBLAS's
// threading and avoids two thread pools fighting over the same cores.
#pragma once
#include <cblas.h>

#include <cstdint>

namespace dp::kernels::cpu::blas {

void use_single_thread();  // idempotent; called by every entry point below

inline CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  use_single_thread();
  cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                 int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  use_single_thread();
  cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

}  // namespace dp::kernels::cpu::blas
