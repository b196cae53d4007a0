// CUDA softmax cross-entropy (contract: kernels/softmax_ce.h): one warp per row, a stable
// log-sum-exp in double as on the CPU, then a single-block sum of the row losses in a fixed
// order (deterministic).
//
// Labels are not validated on the device (that would need a host round trip): a row whose label
// is outside [0, C) gets a NaN loss and NaN gradients, so the mean loss turns NaN visibly.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/softmax_ce.h"

namespace dp::kernels::cuda {

namespace {

using detail::OpScope;

constexpr int kWarpsPerBlock = 8;

template <class T>
__global__ void softmax_ce_rows_kernel(const T* logits, const int64_t* labels, int64_t rows, int64_t cols,
                                       T* dlogits, double* row_loss) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const T* z = logits + row * cols;
  T* d = dlogits + row * cols;
  const int64_t label = labels[row];
  const bool bad = label < 0 || label >= cols;
  const double inv_b = 1.0 / static_cast<double>(rows);

  double zmax = -INFINITY;
  for (int64_t j = lane; j < cols; j += 32) zmax = fmax(zmax, static_cast<double>(z[j]));
  for (int o = 16; o > 0; o >>= 1) zmax = fmax(zmax, __shfl_xor_sync(0xffffffffu, zmax, o));
  double sum = 0.0;
  for (int64_t j = lane; j < cols; j += 32) sum += exp(static_cast<double>(z[j]) - zmax);
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);

  const double inv_sum = 1.0 / sum;
  for (int64_t j = lane; j < cols; j += 32) {
    T v = static_cast<T>(exp(static_cast<double>(z[j]) - zmax) * inv_sum * inv_b);
    if (j == label) v -= static_cast<T>(inv_b);
    d[j] = bad ? static_cast<T>(NAN) : v;
  }
  if (lane == 0) row_loss[row] = bad ? NAN : log(sum) + zmax - static_cast<double>(z[label]);
}

template <class T>
__global__ void mean_loss_kernel(const double* row_loss, int64_t rows, T* loss) {
  __shared__ double partial[1024];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) acc += row_loss[i];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) loss[0] = static_cast<T>(partial[0] / static_cast<double>(rows));
}

}  // namespace

void softmax_ce_forward_backward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& dlogits) {
  const int64_t rows = logits.size(0), cols = logits.size(1);
  DP_CHECK(labels.dtype() == DType::Int64, "cross_entropy: labels must be int64, got " + labels.str(),
           "convert the labels with .to(DType::Int64)");
  OpScope op(logits);
  Tensor row_loss = Tensor::empty({std::max<int64_t>(rows, 1)}, DType::Float64, logits.device());
  DP_CUDA_FLOAT_TYPES(logits.dtype(), "cross_entropy", [&] {
    if (rows > 0) {
      unsigned blocks = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
      softmax_ce_rows_kernel<<<blocks, kWarpsPerBlock * 32, 0, op.stream()>>>(
          logits.data<scalar_t>(), labels.data<int64_t>(), rows, cols, dlogits.data<scalar_t>(),
          row_loss.data<double>());
      DP_CUDA_CHECK_LAUNCH();
    }
    mean_loss_kernel<<<1, 256, 0, op.stream()>>>(row_loss.data<double>(), rows, loss.data<scalar_t>());
    DP_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace dp::kernels::cuda
