// Model SGD with PyTorch's exact semantics (torch.optim.SGD, dampening 0): the update is the
// sgd kernel family (kernels/sgd.h), which documents the float32 operations.
//
// Flat storage: the optimiser gathers the parameters into a FlatParameters (train/
// flat_parameters.h: the parameters become views of one weight buffer, their gradients views
// of one gradient buffer that backward fills in place) and keeps one momentum buffer laid out
// alike, so step() is one fused update of the whole model: one launch on CUDA, one parallel
// loop on the CPU, bit for bit what a per-parameter update gives.
//
// One difference from PyTorch: every parameter takes part in every step. A parameter that got
// no gradient in a pass has a zero gradient (its slice was zeroed), so weight decay and momentum
// still move it (PyTorch skips a parameter whose .grad is None; it behaves like this with
// zero_grad(set_to_none=False) after the first step). All momentum buffers start at the first step.
//
// The learning rate lives in a float32 scalar on the parameters' device (lr_tensor()): set_lr()
// writes it there (a fill on the device's stream), and step() only launches the update, which
// reads the rate on the device. Between steps no launch argument changes except the one-off
// "first step" flag, so a CUDA graph can capture step() and replay it under a changing rate.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/host_state.h"
#include "engine/state_io.h"
#include "engine/tensor.h"
#include "train/flat_parameters.h"

namespace dp::train {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// SGD's part of a checkpoint: the momentum buffer of each parameter that has one, as the dataset
// optimizer/momentum/<parameter name>. Reading checks each buffer against its parameter (shape,
// dtype; `what` names the net in messages); buffers are optional (none before the first step).
void save_momentum_state(StateWriter& out, const NamedTensors& buffers);
NamedTensors read_momentum_state(StateReader& in, const NamedTensors& parameters, const std::string& what);

struct SgdOptions {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public HasHostState {
 public:
  // float32 parameters, all on one device, each once; they are moved into flat storage.
  SGD(std::vector<Tensor> params, SgdOptions options);
  void step();
  void zero_grad();  // one fill of the flat gradient buffer
  void set_lr(double lr);
  double lr() const { return options_.lr; }
  // float32 scalar on the parameters' device holding lr() (what the update reads).
  const Tensor& lr_tensor() const { return lr_; }
  const SgdOptions& options() const { return options_; }
  // Per-parameter views of the momentum buffer; undefined until the first step (PyTorch: no
  // 'momentum_buffer' yet) and always with momentum 0.
  const std::vector<Tensor>& momentum_buffers() const { return buf_views_; }
  // Restores the buffers (a checkpoint): one tensor per parameter in params() order, each
  // shaped like its parameter (any device), or all undefined for "before the first step". A
  // buffer missing for some parameters only (a checkpoint written by a per-parameter SGD in
  // which they never had a gradient) starts at zero. Nothing changes when a shape mismatches.
  void load_momentum_buffers(const std::vector<Tensor>& buffers);
  // The same by parameter name (`names`: one per parameter, in params() order), for checkpoints:
  // the defined buffers with their names, and their restore (a name without a buffer starts at zero).
  NamedTensors named_momentum(const std::vector<std::string>& names) const;
  void load_named_momentum(const NamedTensors& buffers, const std::vector<std::string>& names);
  const std::vector<Tensor>& params() const { return flat_.params(); }
  FlatParameters& flat() { return flat_; }
  const FlatParameters& flat() const { return flat_; }
  // The flat momentum buffer (undefined before the first step or with momentum 0).
  const Tensor& momentum_flat() const { return buf_; }

  // The flat weight, gradient and momentum buffers (written in place) and the first-step flag
  // the update takes by value (engine/host_state.h).
  void declare_host_state(HostState& state) override;

 private:
  void create_momentum();

  FlatParameters flat_;
  SgdOptions options_;
  Tensor lr_, buf_;
  std::vector<Tensor> buf_views_;
};

}  // namespace dp::train
