// SparseSGD, clamp and deterministic row scatter on CUDA (contract: kernels/cuda/sparse_sgd.h).
#include <algorithm>
#include <climits>
#include <cstdint>

#include <string>

#include "engine/cuda/check.h"
#include "kernels/cuda/sparse_sgd.h"

namespace dp::kernels {

namespace {

constexpr int kSortThreads = 1024;

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

__global__ void sparse_sgd_kernel(SparseSgdArgs a, int64_t P, bool clamp, float lo, float hi) {
  extern __shared__ unsigned char smem[];
  int64_t* keys = reinterpret_cast<int64_t*>(smem);
  int* pos = reinterpret_cast<int*>(keys + P);
  sort_rows(a.rows, a.n, P, keys, pos);
  for (int64_t i = threadIdx.x; i < a.n; i += blockDim.x) {
    const int64_t row = keys[i];
    if (i > 0 && keys[i - 1] == row) continue;  // not the head of its segment
    if (row < 0 || row >= a.num_rows) continue;  // out of range: ignored (no device-side throw)
    float g = 0.0f;  // zero-initialised, then += in batch order: the CPU's and dense reference's sum
    for (int64_t k = i; k < a.n && keys[k] == row; ++k) g = __fadd_rn(g, a.grads[pos[k]]);
    if (a.presence == SparsePresence::NonZeroGrad && g == 0.0f) continue;
    const float buf = a.first_step ? g : __fadd_rn(__fmul_rn(a.momentum, a.momentum_buf[row]), g);
    a.momentum_buf[row] = buf;
    float theta = __fsub_rn(a.param[row], __fmul_rn(a.lr, buf));
    if (clamp) theta = clamp_value(theta, lo, hi);
    a.param[row] = theta;
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
  DP_CHECK(n <= kSparseSgdMaxBatch,
           "sparse row update: " + std::to_string(n) + " rows exceed the one-block limit of " +
               std::to_string(kSparseSgdMaxBatch),
           "split the batch, or raise kSparseSgdMaxBatch (shared memory: 12 bytes per row)");
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

}  // namespace

void sparse_sgd_step_cuda(const SparseSgdArgs& args, bool clamp, float clamp_lo, float clamp_hi,
                          cudaStream_t stream) {
  DP_CHECK(args.param && args.momentum_buf && (args.n == 0 || (args.rows && args.grads)),
           "sparse_sgd_step_cuda: missing pointers", "pass the parameter, buffer, rows and grads");
  if (args.n == 0) return;
  const int64_t P = padded_size(args.n);
  const size_t shared = prepare_shared(sparse_sgd_kernel, P);
  const int threads = static_cast<int>(std::min<int64_t>(kSortThreads, std::max<int64_t>(32, P / 2)));
  sparse_sgd_kernel<<<1, threads, shared, stream>>>(args, P, clamp, clamp_lo, clamp_hi);
  DP_CUDA_CHECK_LAUNCH();
}

void clamp_all_cuda(float* param, int64_t num_rows, float lo, float hi, cudaStream_t stream) {
  if (num_rows == 0) return;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((num_rows + threads - 1) / threads, 8192);
  clamp_all_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(param, num_rows, lo, hi);
  DP_CUDA_CHECK_LAUNCH();
}

void scatter_rows_to_dense_cuda(const int64_t* rows, const float* grads, int64_t n, float* dense,
                                int64_t dense_size, bool deterministic, cudaStream_t stream) {
  if (n == 0) return;
  if (deterministic) {
    const int64_t P = padded_size(n);
    const size_t shared = prepare_shared(scatter_sorted_kernel, P);
    const int threads = static_cast<int>(std::min<int64_t>(kSortThreads, std::max<int64_t>(32, P / 2)));
    scatter_sorted_kernel<<<1, threads, shared, stream>>>(rows, grads, n, P, dense, dense_size);
  } else {
    const int threads = 256;
    scatter_atomic_kernel<<<static_cast<unsigned>((n + threads - 1) / threads), threads, 0, stream>>>(
        rows, grads, n, dense, dense_size);
  }
  DP_CUDA_CHECK_LAUNCH();
}

}  // namespace dp::kernels
