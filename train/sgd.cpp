#include "train/sgd.h"

#include <fmt/format.h>

#include "engine/autograd.h"
#include "kernels/ops.h"
#include "kernels/training_ops.h"

namespace dp::train {

SGD::SGD(std::vector<Tensor> params, SgdOptions options) : flat_(std::move(params)), options_(options) {
  DP_CHECK(!options_.nesterov || options_.momentum > 0.0, "SGD: Nesterov momentum requires momentum > 0",
           "set momentum (0.9 in the reference) or turn nesterov off");
  DP_CHECK(options_.momentum >= 0.0 && options_.weight_decay >= 0.0,
           fmt::format("SGD: momentum {} and weight decay {} must be >= 0", options_.momentum,
                       options_.weight_decay),
           "check optimizer.momentum and optimizer.weight_decay");
  lr_ = Tensor::scalar(options_.lr, DType::Float32, flat_.weights().device());
  buf_views_.resize(flat_.size());
}

void SGD::set_lr(double lr) {
  options_.lr = lr;
  kernels::fill_(lr_, lr);
}

void SGD::zero_grad() { flat_.zero_grad(); }

void SGD::create_momentum() {
  buf_ = Tensor::empty({flat_.total()}, DType::Float32, flat_.weights().device());
  for (size_t i = 0; i < flat_.size(); ++i) buf_views_[i] = flat_.view(buf_, i);
}

void SGD::step() {
  if (flat_.total() == 0) return;
  const kernels::SgdHyper h{static_cast<float>(options_.momentum), static_cast<float>(options_.weight_decay),
                   options_.nesterov};
  // The first step writes buf ← d everywhere, padding included: no fill needed.
  const bool first = options_.momentum != 0.0 && !buf_.defined();
  if (first) create_momentum();
  NoGradGuard no_grad;
  kernels::sgd_step_(flat_.weights(), flat_.grads(), buf_, lr_, h, first);
}

void SGD::declare_host_state(HostState& state) {
  state.version("weights", flat_.weights());
  state.version("grads", flat_.grads());
  state.version("momentum", buf_);
  state.kernel_argument("first_step",
                        [this] { return static_cast<int64_t>(options_.momentum != 0.0 && !buf_.defined()); });
}

void SGD::load_momentum_buffers(const std::vector<Tensor>& buffers) {
  DP_CHECK(buffers.size() == flat_.size(),
           fmt::format("SGD: {} momentum buffers for {} parameters", buffers.size(), flat_.size()),
           "pass one (possibly undefined) buffer per parameter, in params() order");
  bool any = false;
  for (size_t i = 0; i < buffers.size(); ++i) {
    if (!buffers[i].defined()) continue;
    any = true;
    DP_CHECK(buffers[i].shape() == flat_.params()[i].shape() && buffers[i].dtype() == DType::Float32,
             fmt::format("SGD: momentum buffer {} is {}, its parameter {}", i, buffers[i].str(),
                         flat_.params()[i].str()),
             "the checkpoint was written for another model");
  }
  if (options_.momentum == 0.0 || !any) {
    buf_ = Tensor();
    for (Tensor& v : buf_views_) v = Tensor();
    return;
  }
  create_momentum();
  kernels::fill_(buf_, 0.0);
  for (size_t i = 0; i < buffers.size(); ++i) {
    if (!buffers[i].defined()) continue;
    const Tensor& b = buffers[i];
    const Tensor src = b.device() == buf_.device() ? b : b.to(buf_.device());
    buf_views_[i].copy_from(kernels::convert(src, DType::Float32, buf_views_[i].memory_format()));
  }
}

namespace {
const std::string kMomentumPrefix = "optimizer/momentum/";
}

void save_momentum_state(StateWriter& out, const NamedTensors& buffers) {
  for (const auto& [name, t] : buffers) out.tensor(kMomentumPrefix + name, t);
}

NamedTensors read_momentum_state(StateReader& in, const NamedTensors& parameters, const std::string& what) {
  NamedTensors out;
  for (const auto& [name, p] : parameters) {
    const std::string dataset = kMomentumPrefix + name;
    const Tensor* m = in.take(dataset);
    if (m == nullptr) continue;
    in.expect_shape(dataset, *m, p.shape(), "the parameter " + name + " of " + what);
    in.expect_dtype(dataset, *m, p.dtype());
    out.emplace_back(name, *m);
  }
  return out;
}

NamedTensors SGD::named_momentum(const std::vector<std::string>& names) const {
  NamedTensors out;
  for (size_t i = 0; i < names.size() && i < buf_views_.size(); ++i)
    if (buf_views_[i].defined()) out.emplace_back(names[i], buf_views_[i]);
  return out;
}

void SGD::load_named_momentum(const NamedTensors& buffers, const std::vector<std::string>& names) {
  std::vector<Tensor> by_index(names.size());
  for (size_t i = 0; i < names.size(); ++i)
    for (const auto& [name, t] : buffers)
      if (name == names[i]) by_index[i] = t;
  load_momentum_buffers(by_index);
}

}  // namespace dp::train
