// Fused multi-tensor model SGD on CUDA (semantics: train/sgd.h). Every thread walks the table
// of tensors with a grid-stride loop; the arithmetic uses explicit-rounding intrinsics so it is
// bit-identical to the CPU version (std::fma for the "+ α·x" steps, separate rounding for m·buf).
#include <algorithm>

#include "engine/cuda/check.h"
#include "kernels/cuda/sgd.h"

namespace dp::kernels {

namespace {

__global__ void sgd_kernel(SgdTensorTable t, float lr, float m, float wd, bool nesterov) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int k = 0; k < t.count; ++k) {
    float* __restrict__ w = t.w[k];
    const float* __restrict__ g = t.g[k];
    float* __restrict__ buf = t.buf[k];
    const bool first = t.first[k] != 0;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < t.n[k]; i += stride) {
      const float wi = w[i];
      float d = wd != 0.0f ? __fmaf_rn(wd, wi, g[i]) : g[i];
      const float b = first ? d : __fadd_rn(__fmul_rn(m, buf[i]), d);
      buf[i] = b;
      d = nesterov ? __fmaf_rn(m, b, d) : b;
      w[i] = __fmaf_rn(-lr, d, wi);
    }
  }
}

}  // namespace

void sgd_step_cuda(const SgdTensorTable& table, float lr, float momentum, float weight_decay,
                   bool nesterov, cudaStream_t stream) {
  if (table.count == 0) return;
  int64_t largest = 0;
  for (int k = 0; k < table.count; ++k) largest = std::max(largest, table.n[k]);
  if (largest == 0) return;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((largest + threads - 1) / threads, 132 * 16);
  sgd_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(table, lr, momentum, weight_decay,
                                                                    nesterov);
  DP_CUDA_CHECK_LAUNCH();
}

}  // namespace dp::kernels
