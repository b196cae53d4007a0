// Data-parameter cross-entropy (SPEC-data-parameters §1), fused: gather θ for the batch, form
// σ*, scale the logits, stable softmax-CE forward and backward, per-row σ* and θ gradients —
// one pass per row.
//
// The op does not scatter θ gradients into dense [num_classes]/[num_instances] tensors: it writes
// one gradient per batch row (dtheta_*_rows). The SparseSGD step consumes (rows, per-row grads)
// directly and sums duplicate rows itself in batch order, so the dense reference's gradient
// (the sum over rows with the same class or index) is reproduced in O(B) and deterministically.
// `scatter_rows_to_dense` below gives the dense gradient when one is wanted (tests, logging).
#pragma once
#include <cstdint>

namespace dp::kernels {

template <class T>
struct DataParamCeArgs {
  // ---- inputs ----
  const T* logits = nullptr;         // [batch, num_classes], row-major
  const int64_t* labels = nullptr;   // [batch], in [0, num_classes)
  const int64_t* indices = nullptr;  // [batch] dataset index; needed when theta_inst is given
  const T* theta_class = nullptr;    // [num_classes] log σ_class; null: class level not learnt
  const T* theta_inst = nullptr;     // [num_instances] log σ_inst; null: instance level not learnt
  int64_t batch = 0;
  int64_t num_classes = 0;
  int64_t num_instances = 0;
  double wd_class = 0.0;  // log-space weight decay, applied only when > 0 and theta_class given
  double wd_inst = 0.0;
  // ---- outputs (each may be null when not wanted) ----
  T* dlogits = nullptr;            // [batch, num_classes]: ∂L/∂z = (p − onehot)/(σ*·B)
  T* row_ce = nullptr;             // [batch]: −log softmax(z/σ*)[y], not divided by B
  T* sigma = nullptr;              // [batch]: σ*_b
  T* dsigma = nullptr;             // [batch]: ∂L/∂σ*_b
  T* dtheta_class_rows = nullptr;  // [batch]: ∂L/∂σ*_b·exp(θ_class[y_b]) + wd_class·θ_class[y_b]
  T* dtheta_inst_rows = nullptr;   // [batch]: ∂L/∂σ*_b·exp(θ_inst[i_b]) + wd_inst·θ_inst[i_b]
};

// Validates labels and indices (throws dp::Error naming the bad row), runs the fused op and
// returns the loss: mean CE + 0.5·wd_class·Σ_b θ_class[y_b]² + 0.5·wd_inst·Σ_b θ_inst[i_b]²
// (penalties only for the learnt kinds with wd > 0). With neither θ given, σ* = 1: plain CE.
// Row sums are accumulated in double for both T. Instantiated for float and double.
template <class T>
double data_param_ce_cpu(const DataParamCeArgs<T>& args);

// dense[rows[b]] += grads[b] for b = 0..n−1, in batch order (the dense reference's sum).
template <class T>
void scatter_rows_to_dense_cpu(const int64_t* rows, const T* grads, int64_t n, T* dense,
                               int64_t dense_size);

}  // namespace dp::kernels
