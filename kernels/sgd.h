// Model SGD update with PyTorch's exact semantics (torch.optim.SGD, dampening 0), elementwise
// over float32 buffers (one parameter, or the whole model's flat buffer: train/flat_parameters.h):
//   d ← g + wd·w                 (coupled weight decay)
//   buf ← d on the first step, else buf ← momentum·buf + d      (momentum > 0 only)
//   w ← w − lr·(d + momentum·buf)  (Nesterov)   or   w ← w − lr·buf   (or w − lr·d without momentum)
// The "+ α·x" operations are fused multiply-adds (one rounding), as PyTorch's vectorised
// add(alpha=) and CUDA kernels compute them; momentum·buf is rounded before adding d. Both
// backends perform the same float32 operations, so they agree bit for bit.
//
// The learning rate is read from `lr`, a float32 scalar on the weights' device, when the update
// runs (not when it is queued): a CUDA graph replays the same launch while the optimiser writes
// each step's rate into that scalar. Nothing else changes between steps but `first_step`.
#pragma once
#include "engine/tensor.h"

namespace dp::kernels {

struct SgdHyper {
  float momentum = 0.9f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};

}  // namespace dp::kernels

#define DP_SGD_KERNELS                                                                        \
  /* weights, grads: float32, same number of elements and memory format; momentum_buf: the */ \
  /* same, or undefined when h.momentum == 0; lr: float32 scalar. All on one device. */       \
  void sgd_step(Tensor& weights, const Tensor& grads, Tensor& momentum_buf, const Tensor& lr, \
                const SgdHyper& h, bool first_step);

namespace dp::kernels::cpu { DP_SGD_KERNELS }
#ifdef DP_WITH_CUDA
namespace dp::kernels::cuda { DP_SGD_KERNELS }
#endif
#undef DP_SGD_KERNELS
