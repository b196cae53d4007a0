// Lazy, per-row momentum SGD for data parameters (SPEC-data-parameters §2), O(batch) per step.
//
// The gradient arrives as (rows[b], grads[b]) for the batch's rows, duplicates allowed. Rows
// are first coalesced: duplicates are summed in batch order (the order in which the dense
// reference accumulates them), so a class seen k times gets ONE update with the summed
// gradient. Then, per unique row:
//   present (default: summed float32 gradient != 0.0; option: in the batch):
//     buf ← g on the optimiser's first step, else buf ← momentum·buf + g;  θ ← θ − lr·buf
//   absent: θ and buf untouched (momentum does not decay).
// All arithmetic is float32 with the reference's rounding order.
#pragma once
#include <cstdint>

namespace dp::kernels {

enum class SparsePresence : uint8_t {
  NonZeroGrad,  // the reference's rule: a row whose gradient is exactly 0.0 is absent
  InBatch,      // every row that appears in the batch is present
};

struct SparseSgdArgs {
  float* param = nullptr;         // [num_rows]
  float* momentum_buf = nullptr;  // [num_rows]
  int64_t num_rows = 0;
  const int64_t* rows = nullptr;  // [n] rows of the batch, in batch order, duplicates allowed
  const float* grads = nullptr;   // [n] gradient of each batch row
  int64_t n = 0;
  float lr = 0.1f;
  float momentum = 0.9f;
  bool first_step = false;  // the optimiser's first step call: buf ← g
  SparsePresence presence = SparsePresence::NonZeroGrad;
  // Optional, capacity n: receives the unique rows that were updated (ascending).
  int64_t* updated_rows = nullptr;
};

// Returns the number of rows updated. Throws dp::Error for a row outside [0, num_rows).
int64_t sparse_sgd_step_cpu(const SparseSgdArgs& args);

// The reference algorithm on a dense gradient (O(num_rows)); for tests and benchmarks.
void sparse_sgd_step_dense_cpu(float* param, float* momentum_buf, const float* dense_grad,
                               int64_t num_rows, float lr, float momentum, bool first_step);

// θ ← min(max(θ, lo), hi) for every entry / for the given rows. NaN stays NaN, like torch.clamp.
void clamp_all_cpu(float* param, int64_t num_rows, float lo, float hi);
void clamp_rows_cpu(float* param, const int64_t* rows, int64_t n, float lo, float hi);

}  // namespace dp::kernels
