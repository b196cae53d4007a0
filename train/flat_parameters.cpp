#include "train/flat_parameters.h"

#include <fmt/format.h>

#include <unordered_set>

#include "engine/autograd.h"
#include "kernels/ops.h"

namespace dp::train {

FlatParameters::FlatParameters(std::vector<Tensor> params) : params_(std::move(params)) {
  std::unordered_set<const TensorImpl*> seen;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    DP_CHECK(p.defined() && p.dtype() == DType::Float32 && p.device() == params_[0].device(),
             fmt::format("FlatParameters: parameter {} is {}; all must be float32 on one device", i,
                         p.defined() ? p.str() : std::string("undefined")),
             "keep fp32 master weights for the optimiser, and move the model before building it");
    DP_CHECK(p.is_leaf() && seen.insert(p.impl()).second,
             fmt::format("FlatParameters: parameter {} ({}) is not a leaf or is listed twice", i, p.str()),
             "pass each of the model's parameters once (Module::parameters())");
    offsets_.push_back(total_);
    total_ += (p.numel() + kAlignment - 1) / kAlignment * kAlignment;
  }
  const Device device = params_.empty() ? Device::cpu() : params_[0].device();
  weights_ = Tensor::zeros({total_}, DType::Float32, device);
  grads_ = Tensor::zeros({total_}, DType::Float32, device);
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    Tensor w = view(weights_, i), g = view(grads_, i);
    w.copy_from(p);
    if (p.grad().defined()) g.copy_from(p.grad());
    p.set_data(w);
    p.bind_grad(g);
  }
}

Tensor FlatParameters::view(const Tensor& flat, size_t i) const {
  DP_CHECK(flat.defined() && flat.dim() == 1 && flat.numel() == total_ && flat.dtype() == DType::Float32,
           fmt::format("FlatParameters::view: {} is not a flat float32 [{}] buffer",
                       flat.defined() ? flat.str() : std::string("undefined"), total_),
           "use weights(), grads() or a buffer of total() elements");
  const Tensor& p = params_.at(i);
  return flat.view_at(offsets_[i], p.shape(), p.memory_format());
}

void FlatParameters::zero_grad() { kernels::fill_(grads_, 0.0); }

}  // namespace dp::train
