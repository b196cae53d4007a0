#include "kernels/gemm.h"

#include <fmt/format.h>

#include <mutex>

#include "engine/thread_pool.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/type_dispatch.h"

namespace dp::kernels::cpu {

namespace blas {
void use_single_thread() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}
}  // namespace blas

namespace {
// Below this many multiply-adds a GEMM runs on the calling thread.
constexpr int64_t kParallelMacs = int64_t{1} << 21;
}  // namespace

void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta,
          Tensor& c) {
  const int64_t m = c.size(0), n = c.size(1);
  const int64_t k = trans_a ? a.size(0) : a.size(1);
  DP_CPU_FLOAT_TYPES(c.dtype(), "gemm", [&] {
    const scalar_t* pa = a.data<scalar_t>();
    const scalar_t* pb = b.data<scalar_t>();
    scalar_t* pc = c.data<scalar_t>();
    const int64_t lda = a.size(1), ldb = b.size(1);
    // Row blocks of C on the pool: each element's dot product is the same whatever the split.
    const int64_t rows_per_task = m * n * k < kParallelMacs ? m : std::max<int64_t>(16, m / 8);
    parallel_for(0, m, rows_per_task, [&](int64_t r0, int64_t r1) {
      const scalar_t* a_rows = trans_a ? pa + r0 : pa + r0 * lda;
      blas::gemm(trans_a, trans_b, r1 - r0, n, k, static_cast<scalar_t>(alpha), a_rows, lda, pb, ldb,
                 static_cast<scalar_t>(beta), pc + r0 * n, n);
    });
  });
}

void bias_add_rows(Tensor& y, const Tensor& bias) {
  const int64_t rows = y.size(0), cols = y.numel() / std::max<int64_t>(rows, 1);
  DP_CPU_FLOAT_TYPES(y.dtype(), "bias_add_rows", [&] {
    scalar_t* py = y.data<scalar_t>();
    const scalar_t* pb = bias.data<scalar_t>();
    parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)),
                 [&](int64_t r0, int64_t r1) {
                   for (int64_t r = r0; r < r1; ++r) {
                     scalar_t* row = py + r * cols;
                     for (int64_t j = 0; j < cols; ++j) row[j] += pb[j];
                   }
                 });
  });
}

void sum_rows(const Tensor& dy, Tensor& db) {
  const int64_t rows = dy.size(0), cols = dy.numel() / std::max<int64_t>(rows, 1);
  DP_CPU_FLOAT_TYPES(dy.dtype(), "sum_rows", [&] {
    const scalar_t* pdy = dy.data<scalar_t>();
    scalar_t* pdb = db.data<scalar_t>();
    // Column blocks: every column is summed over rows in order, so the result does not
    // depend on the number of threads.
    parallel_for(0, cols, 64, [&](int64_t c0, int64_t c1) {
      std::vector<double> acc(static_cast<size_t>(c1 - c0), 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        const scalar_t* row = pdy + r * cols;
        for (int64_t j = c0; j < c1; ++j) acc[static_cast<size_t>(j - c0)] += row[j];
      }
      for (int64_t j = c0; j < c1; ++j) pdb[j] = static_cast<scalar_t>(acc[static_cast<size_t>(j - c0)]);
    });
  });
}

}  // namespace dp::kernels::cpu
