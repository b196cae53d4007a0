// Mixed-precision mode, per thread (like PyTorch's torch.autocast, but explicit and small).
//
//   { dp::AutocastGuard bf16(dp::DType::BFloat16);  loss = kernels::cross_entropy(net->forward(x), y); }
//   loss.backward();  // outside the guard is fine: the graph remembers the casts
//
// Under the guard, kernels::conv2d and kernels::linear cast their input and weight to the autocast
// dtype (differentiably: the gradients that reach float32 parameters come back as float32),
// run on tensor cores with float32 accumulation and return bf16; batch_norm, relu, add,
// pooling and dropout keep bf16 activations (BN statistics and parameters stay float32);
// cross_entropy computes in float32. Parameters, gradients and the optimiser stay float32.
// CUDA only: an op that would need bf16 on the CPU throws.
#pragma once
#include <cstdint>

#include "engine/dtype.h"

namespace dp {

namespace detail {
struct AutocastState {
  DType dtype = DType::Float32;  // Float32: autocast off
  int depth = 0;                 // nesting of guards that enabled it
  uint64_t epoch = 0;            // bumped when the outermost enabling guard opens
};
inline thread_local AutocastState autocast_state;
}  // namespace detail

// The dtype conv2d/linear compute in on this thread: DType::Float32 when autocast is off.
inline DType autocast_dtype() { return detail::autocast_state.dtype; }
inline bool autocast_enabled() { return detail::autocast_state.dtype != DType::Float32; }
// Changes whenever a new outermost autocast region starts: the cast-weight cache lives for one region.
inline uint64_t autocast_epoch() { return detail::autocast_state.epoch; }

// Sets the autocast dtype for a scope (DType::BFloat16 to enable, DType::Float32 to disable
// inside an enabled region); restores the previous mode on exit.
class AutocastGuard {
 public:
  explicit AutocastGuard(DType dtype) : previous_(detail::autocast_state.dtype) {
    auto& s = detail::autocast_state;
    if (dtype != DType::Float32 && s.depth++ == 0) ++s.epoch;
    enabling_ = dtype != DType::Float32;
    s.dtype = dtype;
  }
  ~AutocastGuard() {
    auto& s = detail::autocast_state;
    s.dtype = previous_;
    if (enabling_ && --s.depth == 0) ++s.epoch;  // drops the cached weight casts
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  DType previous_;
  bool enabling_ = false;
};

}  // namespace dp
