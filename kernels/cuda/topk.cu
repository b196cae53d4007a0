// CUDA top-k counts (contract: kernels/topk.h): one warp per row counts the classes scoring
// higher than the label's; lane 0 adds the row's verdicts with integer atomics (exact, so the
// order does not matter).
#include "kernels/cuda/common.cuh"
#include "kernels/topk.h"

namespace dp::kernels::cuda {

namespace {

using detail::OpScope;

constexpr int kWarpsPerBlock = 8;

__global__ void topk_kernel(const float* z, const int64_t* y, int64_t rows, int64_t classes,
                            unsigned long long* counts) {
  const int lane = threadIdx.x & 31;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5); i < rows;
       i += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    if (y[i] < 0 || y[i] >= classes) continue;  // the whole warp skips the row
    const float* row = z + i * classes;
    const float target = row[y[i]];
    unsigned higher = 0;
    for (int64_t c = lane; c < classes; c += 32) higher += row[c] > target ? 1u : 0u;
    for (int o = 16; o > 0; o >>= 1) higher += __shfl_down_sync(0xffffffffu, higher, o);
    if (lane == 0) {
      if (higher < 1) atomicAdd(&counts[0], 1ull);
      if (higher < 5) atomicAdd(&counts[1], 1ull);
    }
  }
}

}  // namespace

void topk_correct_accumulate(const Tensor& logits, const Tensor& labels, Tensor& counts) {
  const int64_t rows = logits.size(0), classes = logits.size(1);
  if (rows == 0) return;
  OpScope op(logits);
  const int64_t blocks = std::min<int64_t>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock, 4096);
  topk_kernel<<<static_cast<unsigned>(blocks), 32 * kWarpsPerBlock, 0, op.stream()>>>(
      logits.data<float>(), labels.data<int64_t>(), rows, classes,
      reinterpret_cast<unsigned long long*>(counts.data<int64_t>()));
  DP_CUDA_CHECK_LAUNCH();
}

}  // namespace dp::kernels::cuda
