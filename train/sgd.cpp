#include "train/sgd.h"

#include <fmt/format.h>

#include "kernels/ops.h"
#include "kernels/training_ops.h"

namespace dp::train {

SGD::SGD(std::vector<Tensor> params, SgdOptions options)
    : params_(std::move(params)), bufs_(params_.size()), options_(options) {
  for (size_t i = 0; i < params_.size(); ++i) {
    DP_CHECK(params_[i].defined() && params_[i].dtype() == DType::Float32 &&
                 params_[i].device() == params_[0].device(),
             fmt::format("SGD: parameter {} is {}; all must be float32 on one device", i,
                         params_[i].defined() ? params_[i].str() : std::string("undefined")),
             "keep fp32 master weights for the optimiser");
  }
  DP_CHECK(!options_.nesterov || options_.momentum > 0.0, "SGD: Nesterov momentum requires momentum > 0",
           "set momentum (0.9 in the reference) or turn nesterov off");
  lr_ = Tensor::scalar(options_.lr, DType::Float32, params_.empty() ? Device::cpu() : params_[0].device());
}

void SGD::set_lr(double lr) {
  options_.lr = lr;
  ops::fill_(lr_, lr);
}

void SGD::zero_grad() {
  for (Tensor& p : params_) p.zero_grad();
}

void SGD::step() {
  const SgdHyper h{static_cast<float>(options_.momentum), static_cast<float>(options_.weight_decay),
                   options_.nesterov};
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    bool first = false;
    if (options_.momentum != 0.0 && !bufs_[i].defined()) {
      bufs_[i] = Tensor::empty_like(p);
      first = true;
    }
    ops::sgd_step_(p, g, bufs_[i], lr_, h, first);
  }
}

}  // namespace dp::train
