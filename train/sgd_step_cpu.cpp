// The CPU multi-tensor SGD update (declared in train/sgd.h); kept apart from the SGD class so
// that it depends on nothing but the standard library.
#include <cmath>

#include "train/sgd.h"

namespace dp::train {

namespace {

// Compiled twice: with hardware FMA (vectorised) and a portable fallback; std::fma keeps the
// single rounding on both.
__attribute__((target_clones("fma", "default"))) void sgd_span(float* __restrict w,
                                                                 const float* __restrict g,
                                                                 float* __restrict buf, int64_t n,
                                                                 bool first, float lr, float momentum,
                                                                 float wd, bool nesterov) {
  for (int64_t i = 0; i < n; ++i) {
    float d = wd != 0.0f ? std::fma(wd, w[i], g[i]) : g[i];
    float b = first ? d : momentum * buf[i] + d;  // fma(d, 1, m·buf) == m·buf + d
    buf[i] = b;
    if (nesterov) d = std::fma(momentum, b, d);
    else d = b;
    w[i] = std::fma(-lr, d, w[i]);
  }
}

}  // namespace

void sgd_step_cpu(const std::vector<SgdSpan>& spans, float lr, float momentum, float weight_decay,
                  bool nesterov) {
  for (const SgdSpan& s : spans)
    sgd_span(s.w, s.g, s.buf, s.n, s.first, lr, momentum, weight_decay, nesterov);
}

}  // namespace dp::train
