#include "layers/layers.h"

#include <fmt/format.h>

#include "layers/init.h"
#include "kernels/ops.h"

namespace dp::layers {

// ---- Conv2d ----

Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p, bool with_bias)
    : Module("Conv2d"), in_channels(in), out_channels(out), kernel(k), stride(s), padding(p) {
  DP_CHECK(in > 0 && out > 0 && k > 0 && s > 0 && p >= 0,
           fmt::format("Conv2d({}, {}, kernel={}, stride={}, padding={}): invalid geometry", in, out, k, s, p),
           "channels, kernel and stride must be positive, padding non-negative");
  weight = Tensor::zeros({out, in, k, k});
  if (with_bias) bias = Tensor::zeros({out});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor Conv2d::forward(const Tensor& x) { return kernels::conv2d(x, weight, bias, stride, padding); }

void Conv2d::reset_parameters(const InitContext& ctx) {
  Rng wr = ctx.rng_for("weight");
  init::default_weight_(weight, wr);
  if (bias.defined()) {
    Rng br = ctx.rng_for("bias");
    init::default_bias_(bias, init::fan_in(weight), br);
  }
}

// ---- BatchNorm2d ----

BatchNorm2d::BatchNorm2d(int64_t c, double eps, double momentum)
    : Module("BatchNorm2d"), channels(c), eps(eps), momentum(momentum) {
  DP_CHECK(c > 0, fmt::format("BatchNorm2d({}): channels must be positive", c), "");
  weight = Tensor::ones({c});
  bias = Tensor::zeros({c});
  running_mean = Tensor::zeros({c});
  running_var = Tensor::ones({c});
  num_batches_tracked = Tensor::zeros({}, DType::Int64);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
  register_buffer("num_batches_tracked", &num_batches_tracked);
}

void BatchNorm2d::count_training_batch() {
  if (is_training()) {
    ++batches_tracked_;
    buffer_stale_ = true;
  }
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  count_training_batch();
  if (sync && is_training())
    return kernels::sync_batch_norm(x, weight, bias, running_mean, running_var, momentum, eps, false, *sync);
  return kernels::batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
}

Tensor BatchNorm2d::forward_relu(const Tensor& x) {
  count_training_batch();
  if (sync && is_training())
    return kernels::sync_batch_norm(x, weight, bias, running_mean, running_var, momentum, eps, true, *sync);
  return kernels::batch_norm_relu(x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
}

void BatchNorm2d::reset_parameters(const InitContext&) {
  init::constant_(weight, 1.0);
  init::constant_(bias, 0.0);
  init::constant_(running_mean, 0.0);
  init::constant_(running_var, 1.0);
  batches_tracked_ = 0;
  buffer_stale_ = true;
  before_state_read();
}

void BatchNorm2d::before_state_read() const {
  if (!buffer_stale_) return;
  Tensor host = Tensor::from_vector(std::vector<int64_t>{batches_tracked_}, {});
  const_cast<Tensor&>(num_batches_tracked).copy_from(host);
  buffer_stale_ = false;
}

void BatchNorm2d::declare_own_host_state(HostState& state) {
  state.counter("batches_tracked", &batches_tracked_, [this] { buffer_stale_ = true; });
}

void BatchNorm2d::after_state_write() {
  batches_tracked_ = num_batches_tracked.to(Device::cpu()).data<int64_t>()[0];
  buffer_stale_ = false;
}

// ---- Linear ----

Linear::Linear(int64_t in, int64_t out, bool with_bias)
    : Module("Linear"), in_features(in), out_features(out) {
  DP_CHECK(in > 0 && out > 0, fmt::format("Linear({}, {}): sizes must be positive", in, out), "");
  weight = Tensor::zeros({out, in});
  if (with_bias) bias = Tensor::zeros({out});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor Linear::forward(const Tensor& x) { return kernels::linear(x, weight, bias); }

void Linear::reset_parameters(const InitContext& ctx) {
  Rng wr = ctx.rng_for("weight");
  init::default_weight_(weight, wr);
  if (bias.defined()) {
    Rng br = ctx.rng_for("bias");
    init::default_bias_(bias, in_features, br);
  }
}

// ---- stateless layers ----

Tensor ReLU::forward(const Tensor& x) { return kernels::relu(x); }
Tensor MaxPool2d::forward(const Tensor& x) { return kernels::max_pool2d(x, kernel, stride, padding); }
Tensor AvgPool2d::forward(const Tensor& x) { return kernels::avg_pool2d(x, kernel, stride, padding); }

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t output_size) : Module("AdaptiveAvgPool2d") {
  DP_CHECK(output_size == 1, fmt::format("AdaptiveAvgPool2d({}) is not supported", output_size),
           "only the global pool (output size 1) is implemented");
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) {
  Tensor pooled = kernels::global_avg_pool(x);
  return kernels::reshape(pooled, {x.size(0), x.size(1), 1, 1});
}

Tensor Flatten::forward(const Tensor& x) { return kernels::flatten(x, start_dim); }

Dropout::Dropout(double p, uint64_t seed, uint64_t stream_base)
    : Module("Dropout"), p(p), seed(seed), stream_base(stream_base) {
  DP_CHECK(p >= 0.0 && p < 1.0, fmt::format("Dropout(p={}): p must be in [0, 1)", p), "");
}

Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || p == 0.0) return x;
  return kernels::dropout(x, p, true, seed, stream_base + calls++);
}

void Dropout::declare_own_host_state(HostState& state) {
  state.counter("calls", &calls);
  state.kernel_argument("mask_stream", [this] { return static_cast<int64_t>(stream_base + calls); });
}

// ---- Sequential ----

Sequential::Sequential(std::initializer_list<ModulePtr> modules) : Module("Sequential") {
  for (const auto& m : modules) push_back(m);
}

Sequential& Sequential::push_back(ModulePtr module) {
  register_module(std::to_string(children().size()), std::move(module));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& [_, m] : children()) y = m->forward(y);
  return y;
}

}  // namespace dp::layers
