// Tensor-level fused data-parameter cross-entropy (docs/method.md §1).
//
// One call runs the fused kernel family (kernels/data_param_ce.h): it returns the scalar loss
// (mean CE + the log-space weight-decay penalties, i.e. the logged loss) with an autograd node
// whose backward gives ∂L/∂logits (times the upstream gradient), and the per-row gradients of
// the data parameters.
//
// Why per-row θ gradients instead of dense θ.grad: θ_inst has one entry per training sample
// (1.28M on ImageNet); a dense gradient would make every step O(N). The SparseSGD optimiser
// consumes (rows, per-row grads) — rows = labels for θ_class, dataset indices for θ_inst —
// and sums duplicate rows itself in batch order, which is exactly the dense reference's
// gradient. The per-row gradients are those of the returned loss (upstream gradient 1); a
// caller that scales the loss before backward must scale them the same way.
#pragma once
#include "engine/tensor.h"

namespace dp::train {

struct DataParamCeOutput {
  Tensor loss;               // scalar, logits' dtype and device; grad_fn flows to logits
  Tensor row_ce;             // [B] −log softmax(z_b/σ*_b)[y_b], the row's loss before the mean
  Tensor sigma;              // [B] σ*_b
  Tensor dsigma;             // [B] ∂L/∂σ*_b
  Tensor dtheta_class_rows;  // [B] (undefined when theta_class is undefined)
  Tensor dtheta_inst_rows;   // [B] (undefined when theta_inst is undefined)
};

// logits [B, C] float32/float64; labels, indices [B] int64 (indices may be undefined when
// theta_inst is); theta_class [C] and theta_inst [N] in the logits' dtype, either undefined
// when that kind is not learnt (both undefined: plain mean CE). All on one device.
// row_grad_scale: see DataParamCeTensors (kernels/data_param_ce.h); 1 in a single process.
DataParamCeOutput data_param_cross_entropy(const Tensor& logits, const Tensor& labels,
                                           const Tensor& indices, const Tensor& theta_class,
                                           const Tensor& theta_inst, double wd_class,
                                           double wd_inst, double row_grad_scale = 1.0);

}  // namespace dp::train
