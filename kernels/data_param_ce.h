// Data-parameter cross-entropy (docs/method.md §1), fused: gather θ for the batch, form
// σ*, scale the logits, stable softmax-CE forward and backward, per-row σ* and θ gradients, in
// one pass per row.
//
// The op does not scatter θ gradients into dense [num_classes]/[num_instances] tensors: it writes
// one gradient per batch row (dtheta_*_rows). The SparseSGD step consumes (rows, per-row grads)
// directly and sums duplicate rows itself in batch order, so the dense reference's gradient
// (the sum over rows with the same class or index) is reproduced in O(B) and deterministically.
// scatter_rows_add (kernels/sparse_sgd.h) gives the dense gradient when one is wanted.
//
// The loss is mean CE + 0.5·wd_class·Σ_b θ_class[y_b]² + 0.5·wd_inst·Σ_b θ_inst[i_b]² (penalties
// only for the learnt kinds with wd > 0). With neither θ given, σ* = 1: plain mean CE. The CPU
// accumulates row sums in double for both dtypes and validates labels and indices (throws naming
// the row); CUDA uses one warp per row, reduces the loss in a fixed order (deterministic) and,
// not being able to throw without a host sync, gives a row with an out-of-range label or index
// a NaN loss and NaN gradients instead of reading out of bounds.
#pragma once
#include "engine/tensor.h"

namespace dp::kernels {

struct DataParamCeTensors {
  // ---- inputs ----
  Tensor logits;       // [B, C] float32 or float64 (float64: CPU only)
  Tensor labels;       // int64 [B], in [0, C)
  Tensor indices;      // int64 [B] dataset indices; needed when theta_inst is given
  Tensor theta_class;  // [C] log σ_class in the logits' dtype; undefined: class level not learnt
  Tensor theta_inst;   // [N] log σ_inst; undefined: instance level not learnt
  double wd_class = 0.0, wd_inst = 0.0;  // log-space weight decay, applied when > 0
  // Multiplies the cross-entropy part of dtheta_*_rows (not the weight-decay part, a per-row
  // sum): a data-parallel rank's share b_r/B of the global batch, whose loss is the mean over
  // B rows while this call's is over its b_r (train/data_parallel.h).
  double row_grad_scale = 1.0;
  // ---- outputs, allocated by the caller in the logits' dtype and device ----
  Tensor loss;               // scalar (required)
  Tensor dlogits;            // [B, C]: ∂L/∂z = (p − onehot)/(σ*·B)
  Tensor row_ce;             // [B]: −log softmax(z/σ*)[y], not divided by B
  Tensor sigma;              // [B]: σ*_b
  Tensor dsigma;             // [B]: ∂L/∂σ*_b
  Tensor dtheta_class_rows;  // [B]: s·∂L/∂σ*_b·exp(θ_class[y_b]) + wd_class·θ_class[y_b], s = row_grad_scale
  Tensor dtheta_inst_rows;   // [B]: s·∂L/∂σ*_b·exp(θ_inst[i_b]) + wd_inst·θ_inst[i_b]
  // Every output except loss may be undefined when not wanted.
};

}  // namespace dp::kernels

#define DP_DATA_PARAM_CE_KERNELS void data_param_ce(const DataParamCeTensors& t);

namespace dp::kernels::cpu { DP_DATA_PARAM_CE_KERNELS }
#ifdef DP_WITH_CUDA
namespace dp::kernels::cuda { DP_DATA_PARAM_CE_KERNELS }
#endif
#undef DP_DATA_PARAM_CE_KERNELS
