// Model SGD with PyTorch's exact semantics (torch.optim.SGD, dampening 0): the update is the
// sgd kernel family (kernels/sgd.h), which documents the float32 operations.
//
// The learning rate lives in a float32 scalar on the parameters' device (lr_tensor()): set_lr()
// writes it there (a fill on the device's stream), and step() only launches the update, which
// reads the rate on the device. Between steps no launch argument changes except the one-off
// "first step" flag, so a CUDA graph can capture step() and replay it under a changing rate.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace dp::train {

struct SgdOptions {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD {
 public:
  // float32 parameters, all on one device. A parameter whose grad is undefined is skipped.
  SGD(std::vector<Tensor> params, SgdOptions options);
  void step();
  void zero_grad();
  void set_lr(double lr);
  double lr() const { return options_.lr; }
  // float32 scalar on the parameters' device holding lr() (what the update reads).
  const Tensor& lr_tensor() const { return lr_; }
  const SgdOptions& options() const { return options_; }
  // Undefined until the parameter's first step (PyTorch: no 'momentum_buffer' yet).
  const std::vector<Tensor>& momentum_buffers() const { return bufs_; }
  std::vector<Tensor>& momentum_buffers() { return bufs_; }
  const std::vector<Tensor>& params() const { return params_; }

 private:
  std::vector<Tensor> params_, bufs_;
  SgdOptions options_;
  Tensor lr_;
};

}  // namespace dp::train
