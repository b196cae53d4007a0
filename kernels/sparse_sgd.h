// Lazy, per-row momentum SGD for data parameters (docs/method.md §2), O(batch) per step,
// the clamp of θ, and the scatter of per-row gradients into a dense one.
//
// The gradient arrives as (rows[b], grads[b]) for the batch's rows, duplicates allowed. Rows
// are first coalesced: duplicates are summed in batch order (the order in which the dense
// reference accumulates them), so a class seen k times gets ONE update with the summed
// gradient. Then, per unique row:
//   present (default: summed float32 gradient != 0.0; option: in the batch):
//     buf ← g on the optimiser's first step, else buf ← momentum·buf + g;  θ ← θ − lr·buf
//     (lr read from a float32 scalar on θ's device when the update runs, as the model SGD does:
//     a CUDA graph replays the same launch under a changing rate)
//     then, when h.clamp: θ ← min(max(θ, lo), hi)  (NaN stays NaN, like torch.clamp)
//   absent: θ and buf untouched (momentum does not decay).
// All arithmetic is float32 with the reference's rounding order; both backends agree bit for bit.
// CUDA: duplicates are coalesced by one block sorting the batch in shared memory (no atomics),
// so a batch holds at most 8192 rows there; rows outside [0, N) are skipped (the CPU throws).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace dp::kernels {

enum class SparsePresence : uint8_t {
  NonZeroGrad,  // the reference's rule: a row whose gradient is exactly 0.0 is absent
  InBatch,      // every row that appears in the batch is present
};

struct SparseSgdHyper {
  float momentum = 0.9f;
  SparsePresence presence = SparsePresence::NonZeroGrad;
  bool clamp = false;  // clamp each updated row right after its update
  float clamp_lo = 0.0f, clamp_hi = 0.0f;
};

}  // namespace dp::kernels

#define DP_SPARSE_SGD_KERNELS                                                                     \
  /* theta, momentum_buf float32 [N]; rows int64 [n]; grads float32 [n]; lr float32 scalar; */  \
  /* one device. updated_rows (optional, CPU only; ignored on CUDA): the updated rows, ascending. */ \
  void sparse_sgd_step(Tensor& theta, Tensor& momentum_buf, const Tensor& rows,                   \
                       const Tensor& grads, const Tensor& lr, const SparseSgdHyper& h,            \
                       bool first_step, std::vector<int64_t>* updated_rows);                      \
  /* θ ← min(max(θ, lo), hi) for every entry of a float32 tensor. */                              \
  void clamp_all(Tensor& theta, float lo, float hi);                                              \
  /* dense[rows[b]] += grads[b]; float32. deterministic: duplicates summed in batch order (the */ \
  /* dense reference's sums; always so on the CPU), else CUDA atomics in unspecified order. */    \
  void scatter_rows_add(Tensor& dense, const Tensor& rows, const Tensor& grads, bool deterministic);

namespace dp::kernels::cpu {
DP_SPARSE_SGD_KERNELS
// The reference algorithm on a dense float32 [N] gradient (present = grad != 0), O(N): the
// oracle of the tests and the baseline of the benchmarks.
void sparse_sgd_step_dense(Tensor& theta, Tensor& momentum_buf, const Tensor& dense_grad, float lr,
                           float momentum, bool first_step);
}  // namespace dp::kernels::cpu
#ifdef DP_WITH_CUDA
namespace dp::kernels::cuda { DP_SPARSE_SGD_KERNELS }
#endif
#undef DP_SPARSE_SGD_KERNELS
