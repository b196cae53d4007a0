// CPU model SGD (contract: kernels/sgd.h): one parallel loop over the buffer. Elementwise, so
// the result does not depend on how parallel_for splits it. Compiled with -ffp-contract=off
// (kernels/meson.build): std::fma is the only fused operation.
#include <cmath>

#include "engine/thread_pool.h"
#include "kernels/sgd.h"

namespace dp::kernels::cpu {

namespace {

// Compiled twice: with hardware FMA (vectorised) and a portable fallback; std::fma keeps the
// single rounding on both.
__attribute__((target_clones("fma", "default"))) void sgd_range(float* __restrict w,
                                                                  const float* __restrict g,
                                                                  float* __restrict buf, int64_t n,
                                                                  bool first, float lr, float momentum,
                                                                  float wd, bool nesterov) {
  if (buf == nullptr) {  // plain SGD: w ← w − lr·(g + wd·w)
    for (int64_t i = 0; i < n; ++i) {
      const float d = wd != 0.0f ? std::fma(wd, w[i], g[i]) : g[i];
      w[i] = std::fma(-lr, d, w[i]);
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    float d = wd != 0.0f ? std::fma(wd, w[i], g[i]) : g[i];
    const float b = first ? d : momentum * buf[i] + d;  // m·buf rounded, then + d
    buf[i] = b;
    d = nesterov ? std::fma(momentum, b, d) : b;
    w[i] = std::fma(-lr, d, w[i]);
  }
}

}  // namespace

void sgd_step(Tensor& weights, const Tensor& grads, Tensor& momentum_buf, const Tensor& lr,
              const SgdHyper& h, bool first_step) {
  struct Args {
    float* w;
    const float* g;
    float* buf;
    float lr;
  } a{weights.data<float>(), grads.data<float>(),
      momentum_buf.defined() ? momentum_buf.data<float>() : nullptr, *lr.data<float>()};
  // One captured reference keeps the std::function in its small buffer: the step allocates
  // nothing. 64 Ki elements per task: a few for a ResNet block, hundreds for a whole model.
  parallel_for(0, weights.numel(), int64_t{1} << 16, [&a, &h, first_step](int64_t begin, int64_t end) {
    sgd_range(a.w + begin, a.g + begin, a.buf ? a.buf + begin : nullptr, end - begin, first_step, a.lr,
              h.momentum, h.weight_decay, h.nesterov);
  });
}

}  // namespace dp::kernels::cpu
