#include "train/sparse_sgd.h"

#include <fmt/format.h>

#include "kernels/ops.h"
#include "kernels/training_ops.h"

namespace dp::train {

SparseSGD::SparseSGD(Tensor param, SparseSgdOptions options)
    : param_(std::move(param)), options_(options) {
  DP_CHECK(param_.defined() && param_.dtype() == DType::Float32 && param_.dim() == 1,
           "SparseSGD: the parameter must be a float32 vector, got " +
               (param_.defined() ? param_.str() : std::string("an undefined tensor")),
           "data parameters are stored as float32 [num_classes] or [num_instances]");
  DP_CHECK(options_.lr >= 0.0 && options_.momentum >= 0.0,
           fmt::format("SparseSGD: lr {} and momentum {} must be >= 0", options_.lr, options_.momentum),
           "check lr_class_param / lr_inst_param");
  buf_ = Tensor::zeros(param_.shape(), DType::Float32, param_.device());
  lr_ = Tensor::scalar(options_.lr, DType::Float32, param_.device());
}

void SparseSGD::set_lr(double lr) {
  DP_CHECK(lr >= 0.0, fmt::format("SparseSGD: lr {} must be >= 0", lr), "check lr_class_param / lr_inst_param");
  options_.lr = lr;
  kernels::fill_(lr_, lr);
}

void SparseSGD::step(const Tensor& rows, const Tensor& grads, SparseClamp clamp) {
  const kernels::SparseSgdHyper h{static_cast<float>(options_.momentum), options_.presence, clamp.enabled, clamp.lo,
                                  clamp.hi};
  // The CPU reports the rows it updated; CUDA does not (that would need a copy to the host).
  kernels::sparse_sgd_step_(param_, buf_, rows, grads, lr_, h, steps_ == 0,
                            param_.device().is_cpu() ? &updated_ : nullptr);
  if (!param_.device().is_cpu()) updated_.clear();
  ++steps_;
}

void SparseSGD::step_dense(const Tensor& dense_grad) {
  DP_CHECK(param_.device().is_cpu() && dense_grad.device().is_cpu() &&
               dense_grad.dtype() == DType::Float32 && dense_grad.numel() == param_.numel(),
           "SparseSGD::step_dense: needs a float32 CPU gradient shaped like the parameter, got " +
               dense_grad.str(),
           "use step(rows, grads) on CUDA");
  kernels::cpu::sparse_sgd_step_dense(param_, buf_, dense_grad, static_cast<float>(options_.lr),
                             static_cast<float>(options_.momentum), steps_ == 0);
  param_.bump_version();
  ++steps_;
}

void SparseSGD::declare_host_state(HostState& state) {
  state.version("param", param_);
  state.version("momentum", buf_);
  state.counter("steps", &steps_);
  state.kernel_argument("first_step", [this] { return static_cast<int64_t>(steps_ == 0); });
}

}  // namespace dp::train
