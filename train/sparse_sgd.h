// SparseSGD for data parameters (docs/method.md §2): lazy per-row momentum, no weight decay
// inside the optimiser, O(batch) work per step.
//
// A step takes the batch's rows and one gradient per batch row (as data_param_cross_entropy
// produces them); duplicate rows are summed in batch order before the single update of that
// row. The reference's dense-gradient form is available as step_dense() (O(N)).
//
// The learning rate lives in a float32 scalar on the parameter's device (lr_tensor()), as the
// model SGD's does (train/sgd.h): set_lr() writes it there and step() only launches the update,
// so a CUDA graph that captured step() replays it under a changed rate (the reference keeps it
// constant; a schedule for it would work).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/host_state.h"
#include "engine/tensor.h"
#include "kernels/sparse_sgd.h"

namespace dp::train {

using dp::kernels::SparsePresence;

struct SparseSgdOptions {
  double lr = 0.1;
  double momentum = 0.9;
  SparsePresence presence = SparsePresence::NonZeroGrad;
};

// Optional clamp of each updated row right after its update.
struct SparseClamp {
  bool enabled = false;
  float lo = 0.0f, hi = 0.0f;
};

class SparseSGD : public HasHostState {
 public:
  // `param`: float32 [N] (CPU or CUDA), updated in place. The momentum buffer starts at zero.
  SparseSGD(Tensor param, SparseSgdOptions options);

  // rows int64 [n], grads float32 [n], both on the parameter's device. When clamp_range is
  // given, each updated row is clamped right after its update (see DataParameters for why that
  // equals the method's clamp of every entry).
  void step(const Tensor& rows, const Tensor& grads, SparseClamp clamp = SparseClamp{});
  // The reference's form: a dense float32 [N] gradient, present = grad != 0 (O(N), CPU only).
  void step_dense(const Tensor& dense_grad);

  const Tensor& param() const { return param_; }
  const Tensor& momentum_buffer() const { return buf_; }
  Tensor& momentum_buffer() { return buf_; }
  const SparseSgdOptions& options() const { return options_; }
  void set_lr(double lr);
  // float32 scalar on the parameter's device holding options().lr (what the update reads).
  const Tensor& lr_tensor() const { return lr_; }
  // Number of step calls so far. The first-step rule (buf ← g) applies while it is 0; a resumed
  // run restores it together with the momentum buffer.
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  // Rows updated by the last CPU step (ascending, unique). Not filled on CUDA.
  const std::vector<int64_t>& last_updated_rows() const { return updated_; }

  // θ and the momentum buffer (written in place), the step count, and the first-step flag the
  // update takes by value (engine/host_state.h).
  void declare_host_state(HostState& state) override;

 private:
  Tensor param_, buf_, lr_;
  SparseSgdOptions options_;
  int64_t steps_ = 0;
  std::vector<int64_t> updated_;
};

}  // namespace dp::train
