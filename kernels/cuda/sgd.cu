// CUDA model SGD (contract: kernels/sgd.h): one grid-stride launch over the buffer, on the
// context's stream. Explicit-rounding intrinsics give the CPU's float32 operations exactly
// (__fmaf_rn for the "+ α·x" steps, __fmul_rn then __fadd_rn for momentum·buf + d).
#include "kernels/cuda/common.cuh"
#include "kernels/sgd.h"

namespace dp::kernels::cuda {

namespace {

using detail::OpScope;

// lr is read on the device: the same launch serves every step of a captured graph.
__global__ void sgd_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ buf,
                           int64_t n, const float* __restrict__ lr, float m, float wd, bool nesterov,
                           bool first) {
  const float rate = *lr;
  DP_GRID_STRIDE(i, n) {
    const float wi = w[i];
    float d = wd != 0.0f ? __fmaf_rn(wd, wi, g[i]) : g[i];
    if (buf != nullptr) {
      const float b = first ? d : __fadd_rn(__fmul_rn(m, buf[i]), d);
      buf[i] = b;
      d = nesterov ? __fmaf_rn(m, b, d) : b;
    }
    w[i] = __fmaf_rn(-rate, d, wi);
  }
}

}  // namespace

void sgd_step(Tensor& weights, const Tensor& grads, Tensor& momentum_buf, const Tensor& lr,
              const SgdHyper& h, bool first_step) {
  const int64_t n = weights.numel();
  if (n == 0) return;
  OpScope op(weights);
  sgd_kernel<<<detail::grid_for(op.ctx, n), detail::kThreads, 0, op.stream()>>>(
      weights.data<float>(), grads.data<float>(),
      momentum_buf.defined() ? momentum_buf.data<float>() : nullptr, n, lr.data<float>(), h.momentum,
      h.weight_decay, h.nesterov, first_step);
  DP_CUDA_CHECK_LAUNCH();
}

}  // namespace dp::kernels::cuda
