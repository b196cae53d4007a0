// SparseSGD, clamp and row scatter on CUDA (contract: kernels/sparse_sgd.h), on the context's
// stream. Duplicate rows: one block sorts the batch's (row, position) pairs in shared memory
// (bitonic), and the first position of each row sums that row's gradients in batch order and
// applies ONE update: the CPU's float32 operations in the CPU's order, with no atomics.
#include <climits>
#include <cstdint>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/sparse_sgd.h"

namespace dp::kernels::cuda {

namespace {

using detail::OpScope;

constexpr int kSortThreads = 1024;
constexpr int64_t kMaxBatch = 8192;  // one block's shared memory: 12 bytes per row

__device__ __forceinline__ float clamp_value(float v, float lo, float hi) {
  return v != v ? v : (v < lo ? lo : (v > hi ? hi : v));  // NaN stays NaN, like torch.clamp
}

// Sorts (row, position) pairs of the batch in shared memory; afterwards each unique row's
// positions are contiguous and ascending. P is a power of two ≥ n; padding sorts last.
__device__ void sort_rows(const int64_t* rows, int64_t n, int64_t P, int64_t* keys, int* pos) {
  for (int64_t i = threadIdx.x; i < P; i += blockDim.x) {
    keys[i] = i < n ? rows[i] : INT64_MAX;
    pos[i] = i < n ? static_cast<int>(i) : INT_MAX;
  }
  __syncthreads();
  for (int64_t k = 2; k <= P; k <<= 1) {
    for (int64_t j = k >> 1; j > 0; j >>= 1) {
      for (int64_t i = threadIdx.x; i < P; i += blockDim.x) {
        const int64_t ixj = i ^ j;
        if (ixj > i) {
          const bool ascending = (i & k) == 0;
          const bool greater = keys[i] > keys[ixj] || (keys[i] == keys[ixj] && pos[i] > pos[ixj]);
          if (greater == ascending) {
            const int64_t tk = keys[i];
            keys[i] = keys[ixj];
            keys[ixj] = tk;
            const int tp = pos[i];
            pos[i] = pos[ixj];
            pos[ixj] = tp;
          }
        }
      }
      __syncthreads();
    }
  }
}

// lr is read on the device: the same launch serves every step of a captured graph.
__global__ void sparse_sgd_kernel(float* param, float* momentum_buf, int64_t num_rows, const int64_t* rows,
                                  const float* grads, int64_t n, int64_t P, const float* __restrict__ lr,
                                  SparseSgdHyper h, bool first) {
  extern __shared__ unsigned char smem[];
  int64_t* keys = reinterpret_cast<int64_t*>(smem);
  int* pos = reinterpret_cast<int*>(keys + P);
  sort_rows(rows, n, P, keys, pos);
  const float rate = *lr;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t row = keys[i];
    if (i > 0 && keys[i - 1] == row) continue;  // not the head of its segment
    if (row < 0 || row >= num_rows) continue;  // out of range: ignored (no device-side throw)
    float g = 0.0f;  // zero-initialised, then += in batch order: the CPU's and dense reference's sum
    for (int64_t k = i; k < n && keys[k] == row; ++k) g = __fadd_rn(g, grads[pos[k]]);
    if (h.presence == SparsePresence::NonZeroGrad && g == 0.0f) continue;
    const float buf = first ? g : __fadd_rn(__fmul_rn(h.momentum, momentum_buf[row]), g);
    momentum_buf[row] = buf;
    float theta = __fsub_rn(param[row], __fmul_rn(rate, buf));
    if (h.clamp) theta = clamp_value(theta, h.clamp_lo, h.clamp_hi);
    param[row] = theta;
  }
}

__global__ void scatter_sorted_kernel(const int64_t* rows, const float* grads, int64_t n, int64_t P,
                                      float* dense, int64_t dense_size) {
  extern __shared__ unsigned char smem[];
  int64_t* keys = reinterpret_cast<int64_t*>(smem);
  int* pos = reinterpret_cast<int*>(keys + P);
  sort_rows(rows, n, P, keys, pos);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t row = keys[i];
    if ((i > 0 && keys[i - 1] == row) || row < 0 || row >= dense_size) continue;
    float acc = dense[row];
    for (int64_t k = i; k < n && keys[k] == row; ++k) acc = __fadd_rn(acc, grads[pos[k]]);
    dense[row] = acc;
  }
}

__global__ void scatter_atomic_kernel(const int64_t* rows, const float* grads, int64_t n, float* dense,
                                      int64_t dense_size) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n && rows[i] >= 0 && rows[i] < dense_size) atomicAdd(dense + rows[i], grads[i]);
}

__global__ void clamp_all_kernel(float* p, int64_t n, float lo, float hi) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = clamp_value(p[i], lo, hi);
}

int64_t padded_size(int64_t n) {
  DP_CHECK(n <= kMaxBatch,
           "sparse row update: " + std::to_string(n) + " rows exceed the one-block limit of " +
               std::to_string(kMaxBatch),
           "split the batch, or raise kMaxBatch in kernels/cuda/sparse_sgd.cu (12 bytes of shared memory per row)");
  int64_t P = 1;
  while (P < n) P <<= 1;
  return P;
}

template <class Kernel>
size_t prepare_shared(Kernel kernel, int64_t P) {
  const size_t bytes = static_cast<size_t>(P) * (sizeof(int64_t) + sizeof(int));
  if (bytes > 48 * 1024)
    DP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(bytes)));
  return bytes;
}

int sort_threads(int64_t P) {
  return static_cast<int>(std::min<int64_t>(kSortThreads, std::max<int64_t>(32, P / 2)));
}

}  // namespace

void sparse_sgd_step(Tensor& theta, Tensor& momentum_buf, const Tensor& rows, const Tensor& grads,
                     const Tensor& lr, const SparseSgdHyper& h, bool first_step,
                     std::vector<int64_t>* /*updated_rows*/) {
  const int64_t n = rows.numel();
  if (n == 0) return;
  const int64_t P = padded_size(n);
  const size_t shared = prepare_shared(sparse_sgd_kernel, P);
  OpScope op(theta);
  sparse_sgd_kernel<<<1, sort_threads(P), shared, op.stream()>>>(
      theta.data<float>(), momentum_buf.data<float>(), theta.numel(), rows.data<int64_t>(),
      grads.data<float>(), n, P, lr.data<float>(), h, first_step);
  DP_CUDA_CHECK_LAUNCH();
}

void clamp_all(Tensor& theta, float lo, float hi) {
  const int64_t n = theta.numel();
  if (n == 0) return;
  OpScope op(theta);
  clamp_all_kernel<<<detail::grid_for(op.ctx, n), detail::kThreads, 0, op.stream()>>>(theta.data<float>(), n,
                                                                                       lo, hi);
  DP_CUDA_CHECK_LAUNCH();
}

void scatter_rows_add(Tensor& dense, const Tensor& rows, const Tensor& grads, bool deterministic) {
  const int64_t n = rows.numel();
  if (n == 0) return;
  OpScope op(dense);
  if (deterministic) {
    const int64_t P = padded_size(n);
    const size_t shared = prepare_shared(scatter_sorted_kernel, P);
    scatter_sorted_kernel<<<1, sort_threads(P), shared, op.stream()>>>(
        rows.data<int64_t>(), grads.data<float>(), n, P, dense.data<float>(), dense.numel());
  } else {
    const int threads = 256;
    scatter_atomic_kernel<<<static_cast<unsigned>((n + threads - 1) / threads), threads, 0, op.stream()>>>(
        rows.data<int64_t>(), grads.data<float>(), n, dense.data<float>(), dense.numel());
  }
  DP_CUDA_CHECK_LAUNCH();
}

}  // namespace dp::kernels::cuda
