// CUDA GEMM through cuBLAS, plus the bias kernels of a linear layer (contract: kernels/gemm.h).
//
// cuBLAS is column-major. A row-major M×N matrix is the column-major N×M matrix of its
// transpose, so C = op(A)·op(B) (row-major) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ (column-major):
// swap the operands, keep each one's transpose flag, and pass each row length as its
// leading dimension.
#include <climits>

#include "kernels/cuda/common.cuh"
#include "kernels/gemm.h"

namespace dp::kernels::cuda {

namespace {

using ::dp::cuda::allow_tf32;
using detail::grid_for;
using detail::kThreads;
using detail::OpScope;
using detail::acc_t;
using detail::from_acc;
using detail::to_acc;

// T: the activations (float, double, bf16); B: the bias and its gradient (T, or float32 beside
// bf16 activations in the bf16 mode).
template <class T, class B>
__global__ void bias_add_rows_kernel(T* y, const B* bias, int64_t rows, int64_t cols) {
  DP_GRID_STRIDE(i, rows * cols) y[i] = from_acc<T>(to_acc(y[i]) + bias[i % cols]);
}

// db[j] = Σ_n dy[n, j]. A block covers 32 columns with 32×8 threads: each thread sums a
// strided set of rows (coalesced across the warp), then the 8 partials are combined in a fixed
// order, so the result is deterministic.
template <class T, class B>
__global__ void sum_rows_kernel(const T* dy, B* db, int64_t rows, int64_t cols) {
  __shared__ double partial[8][33];
  int64_t j = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  double acc = 0.0;
  if (j < cols)
    for (int64_t n = threadIdx.y; n < rows; n += 8) acc += static_cast<double>(to_acc(dy[n * cols + j]));
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    double total = 0.0;
    for (int k = 0; k < 8; ++k) total += partial[k][threadIdx.x];
    db[j] = static_cast<B>(total);
  }
}

int as_int(int64_t v, const char* what) {
  DP_CHECK(v >= 0 && v <= INT_MAX,
           std::string("gemm: ") + what + " = " + std::to_string(v) + " exceeds cuBLAS's 32-bit sizes",
           "split the matrix product into smaller pieces");
  return static_cast<int>(v);
}

}  // namespace

void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta,
          Tensor& c) {
  OpScope op(a);
  const int64_t m = trans_a ? a.size(1) : a.size(0);
  const int64_t k = trans_a ? a.size(0) : a.size(1);
  const int64_t n = trans_b ? b.size(0) : b.size(1);
  if (m == 0 || n == 0) return;
  cublasHandle_t h = op.ctx.cublas();
  const cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int M = as_int(m, "M"), N = as_int(n, "N"), K = as_int(k, "K");
  const int lda = std::max(1, as_int(a.size(1), "lda"));
  const int ldb = std::max(1, as_int(b.size(1), "ldb"));
  const int ldc = std::max(1, N);
  if (a.dtype() == DType::Float32) {
    DP_CUBLAS_CHECK(cublasSetMathMode(h, allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const float al = static_cast<float>(alpha), be = static_cast<float>(beta);
    DP_CUBLAS_CHECK(cublasSgemm(h, opb, opa, N, M, K, &al, b.data<float>(), ldb, a.data<float>(), lda,
                                &be, c.data<float>(), ldc));
  } else if (a.dtype() == DType::Float64) {
    DP_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    DP_CUBLAS_CHECK(cublasDgemm(h, opb, opa, N, M, K, &alpha, b.data<double>(), ldb, a.data<double>(),
                                lda, &beta, c.data<double>(), ldc));
  } else if (a.dtype() == DType::BFloat16) {
    // bf16 inputs and output on tensor cores, float32 accumulation and scaling.
    DP_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    const float al = static_cast<float>(alpha), be = static_cast<float>(beta);
    DP_CUBLAS_CHECK(cublasGemmEx(h, opb, opa, N, M, K, &al, b.raw_data(), CUDA_R_16BF, ldb, a.raw_data(),
                                 CUDA_R_16BF, lda, &be, c.raw_data(), CUDA_R_16BF, ldc, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
  } else {
    detail::unsupported_dtype("gemm", a.dtype());
  }
}

void bias_add_rows(Tensor& y, const Tensor& bias) {
  const int64_t cols = bias.numel();
  const int64_t rows = cols ? y.numel() / cols : 0;
  if (rows == 0) return;
  OpScope op(y);
  DP_CUDA_FLOAT_TYPES_BF16(y.dtype(), "bias_add_rows", [&] {
    using B = acc_t<scalar_t>;
    bias_add_rows_kernel<<<grid_for(op.ctx, rows * cols), kThreads, 0, op.stream()>>>(
        y.data<scalar_t>(), bias.data<B>(), rows, cols);
    DP_CUDA_CHECK_LAUNCH();
  });
}

void sum_rows(const Tensor& dy, Tensor& db) {
  const int64_t cols = db.numel();
  if (cols == 0) return;
  const int64_t rows = dy.numel() / cols;
  OpScope op(dy);
  DP_CUDA_FLOAT_TYPES_BF16(dy.dtype(), "sum_rows", [&] {
    using B = acc_t<scalar_t>;
    dim3 block(32, 8);
    unsigned blocks = static_cast<unsigned>((cols + 31) / 32);
    sum_rows_kernel<<<blocks, block, 0, op.stream()>>>(dy.data<scalar_t>(), db.data<B>(), rows, cols);
    DP_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace dp::kernels::cuda
