// Checked wrapper for the model SGD update (kernels/sgd.h).
#include "kernels/dispatch.h"
#include "kernels/training_ops.h"

namespace dp::kernels {

void sgd_step_(Tensor& weights, const Tensor& grads, Tensor& momentum_buf, const Tensor& lr,
               const SgdHyper& h, bool first_step) {
  auto like_weights = [&](const Tensor& t) {
    return t.defined() && t.dtype() == DType::Float32 && t.numel() == weights.numel() &&
           t.device() == weights.device() && t.memory_format() == weights.memory_format();
  };
  DP_CHECK(weights.defined() && weights.dtype() == DType::Float32 && like_weights(grads),
           fmt::format("sgd_step_: weights {} and gradient {} must be float32 of one size, format and device",
                       weights.defined() ? weights.str() : "undefined", grads.defined() ? grads.str() : "undefined"),
           "keep fp32 master weights; gradients have their parameter's shape and format");
  DP_CHECK(h.momentum == 0.0f ? !momentum_buf.defined() : like_weights(momentum_buf),
           fmt::format("sgd_step_: momentum buffer {} does not fit momentum {} and weights {}",
                       momentum_buf.defined() ? momentum_buf.str() : "undefined", h.momentum, weights.str()),
           "pass a float32 buffer shaped like the weights when momentum > 0, none otherwise");
  DP_CHECK(!h.nesterov || h.momentum > 0.0f, "sgd_step_: Nesterov momentum requires momentum > 0",
           "set momentum (0.9 in the reference) or turn nesterov off");
  DP_CHECK(lr.defined() && lr.numel() == 1 && lr.dtype() == DType::Float32 && lr.device() == weights.device(),
           "sgd_step_: lr must be a float32 scalar on " + weights.device().str() + ", got " +
               (lr.defined() ? lr.str() : std::string("undefined")),
           "keep the learning rate in a device scalar (SGD::lr_tensor())");
  DP_DISPATCH(weights.device(), sgd_step, weights, grads, momentum_buf, lr, h, first_step);
  weights.bump_version();
  if (momentum_buf.defined()) momentum_buf.bump_version();
}

}  // namespace dp::kernels
