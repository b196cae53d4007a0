// The optimiser and data-parameter ops of the training step: checked wrappers (dp::kernels) over the
// sgd, sparse_sgd and data_param_ce kernel families, dispatching on the tensors' device like
// every op in kernels/ops.h. None records autograd: the optimisers update in place under their
// own rules, and the data-parameter loss returns its gradients from the forward pass
// (train/data_param_loss.h wraps it into an autograd node).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"
#include "kernels/data_param_ce.h"
#include "kernels/sgd.h"
#include "kernels/sparse_sgd.h"

namespace dp::kernels {

// ---- model SGD (kernels/sgd.h) ----
// weights ← SGD(weights, grads, momentum_buf) with the rate read from `lr` (float32 scalar on
// the weights' device). momentum_buf undefined ⇔ h.momentum == 0. Bumps the versions.
void sgd_step_(Tensor& weights, const Tensor& grads, Tensor& momentum_buf, const Tensor& lr,
               const SgdHyper& h, bool first_step);

// ---- data-parameter SparseSGD (kernels/sparse_sgd.h) ----
// The rate is read from `lr` (float32 scalar on θ's device), as sgd_step_ reads it.
void sparse_sgd_step_(Tensor& theta, Tensor& momentum_buf, const Tensor& rows, const Tensor& grads,
                      const Tensor& lr, const SparseSgdHyper& h, bool first_step,
                      std::vector<int64_t>* updated_rows = nullptr);
void clamp_all_(Tensor& theta, float lo, float hi);
void scatter_rows_add_(Tensor& dense, const Tensor& rows, const Tensor& grads, bool deterministic = true);

// ---- data-parameter cross-entropy (kernels/data_param_ce.h) ----
// Checks shapes, dtypes and devices of every given tensor (outputs included), then runs the op.
void data_param_ce(const DataParamCeTensors& t);

}  // namespace dp::kernels
