// The layers a CNN is built from, with PyTorch's parameter names, shapes and default init.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "kernels/sync_batch_norm.h"
#include "layers/module.h"

namespace dp::layers {

// weight [out, in, k, k], bias [out] (optional).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride = 1,
         int64_t padding = 0, bool bias = true);
  Tensor forward(const Tensor& x) override;
  void reset_parameters(const InitContext& ctx) override;

  int64_t in_channels, out_channels, kernel, stride, padding;
  Tensor weight, bias;
};

// Per-channel batch normalisation with running statistics. momentum uses PyTorch's
// convention: running = (1 - momentum)·running + momentum·batch.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  // relu(forward(x)) in one fused pass each way (kernels::batch_norm_relu): what nets call where a
  // ReLU follows the BN directly.
  Tensor forward_relu(const Tensor& x);
  void reset_parameters(const InitContext& ctx) override;  // γ = 1, β = 0, stats reset

  int64_t channels;
  double eps, momentum;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;  // the last is int64 []
  // Data-parallel runs with run.sync_batchnorm: training-mode statistics over every rank's batch
  // (kernels/sync_batch_norm.h). Empty: this process's batch only.
  std::shared_ptr<const kernels::BatchNormSync> sync;

 protected:
  void before_state_read() const override;
  void after_state_write() override;
  void declare_own_host_state(HostState& state) override;
  void count_training_batch();  // num_batches_tracked, like PyTorch's forward in training mode

 private:
  // Mirrors num_batches_tracked on the host so a training step never waits on the device.
  int64_t batches_tracked_ = 0;
  mutable bool buffer_stale_ = false;
};

// y = x·weightᵀ + bias, weight [out, in].
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  void reset_parameters(const InitContext& ctx) override;

  int64_t in_features, out_features;
  Tensor weight, bias;
};

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override;
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int64_t kernel, int64_t stride, int64_t padding = 0)
      : Module("MaxPool2d"), kernel(kernel), stride(stride), padding(padding) {}
  Tensor forward(const Tensor& x) override;
  int64_t kernel, stride, padding;
};

class AvgPool2d : public Module {
 public:
  AvgPool2d(int64_t kernel, int64_t stride, int64_t padding = 0)
      : Module("AvgPool2d"), kernel(kernel), stride(stride), padding(padding) {}
  Tensor forward(const Tensor& x) override;
  int64_t kernel, stride, padding;
};

// AdaptiveAvgPool2d((1, 1)): [N,C,H,W] -> [N,C,1,1], as torchvision's ResNet uses it.
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(int64_t output_size = 1);
  Tensor forward(const Tensor& x) override;
};

// [N, ...] -> [N, prod(...)] from start_dim on.
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1) : Module("Flatten"), start_dim(start_dim) {}
  Tensor forward(const Tensor& x) override;
  int64_t start_dim;
};

// Inverted dropout. Each forward in training mode draws a fresh mask from Philox stream
// (stream_base + call count), so runs are reproducible from the seed.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, uint64_t seed = 0, uint64_t stream_base = 0);
  Tensor forward(const Tensor& x) override;
  double p;
  uint64_t seed, stream_base, calls = 0;

 protected:
  // The mask's stream is a host counter passed to the kernel: a training step that draws a mask
  // cannot be replayed (it runs eagerly).
  void declare_own_host_state(HostState& state) override;
};

class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Tensor forward(const Tensor& x) override { return x; }
};

// Children named "0", "1", ... applied in order; an empty Sequential is the identity.
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  explicit Sequential(std::initializer_list<ModulePtr> modules);
  Sequential& push_back(ModulePtr module);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return children().size(); }
  ModulePtr operator[](size_t i) const { return children().at(i).second; }
};

}  // namespace dp::layers
