#include "train/sparse_sgd.h"

#include <fmt/format.h>

#ifdef DP_WITH_CUDA
#include "kernels/cuda/sparse_sgd.h"
#include "engine/cuda/context.h"
#endif

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
}

void SparseSGD::step(const Tensor& rows, const Tensor& grads, SparseClamp clamp) {
  DP_CHECK(rows.dim() == 1 && rows.dtype() == DType::Int64 && grads.dim() == 1 &&
               grads.dtype() == DType::Float32 && rows.numel() == grads.numel() &&
               rows.device() == param_.device() && grads.device() == param_.device(),
           fmt::format("SparseSGD::step: rows {} and grads {} do not match parameter {}", rows.str(),
                       grads.str(), param_.str()),
           "pass int64 [n] rows and float32 [n] per-row gradients on the parameter's device");
  kernels::SparseSgdArgs a;
  a.param = param_.data<float>();
  a.momentum_buf = buf_.data<float>();
  a.num_rows = param_.numel();
  a.rows = rows.data<int64_t>();
  a.grads = grads.data<float>();
  a.n = rows.numel();
  a.lr = static_cast<float>(options_.lr);
  a.momentum = static_cast<float>(options_.momentum);
  a.first_step = steps_ == 0;
  a.presence = options_.presence;
  if (param_.device().is_cpu()) {
    updated_.resize(static_cast<size_t>(a.n));
    a.updated_rows = updated_.data();
    const int64_t count = kernels::sparse_sgd_step_cpu(a);
    updated_.resize(static_cast<size_t>(count));
    if (clamp.enabled) kernels::clamp_rows_cpu(a.param, updated_.data(), count, clamp.lo, clamp.hi);
  } else {
#ifdef DP_WITH_CUDA
    updated_.clear();
    const cuda::DeviceGuard guard(param_.device().index);
    kernels::sparse_sgd_step_cuda(a, clamp.enabled, clamp.lo, clamp.hi, cuda::context(param_.device()).stream());
#else
    DP_THROW("SparseSGD on " + param_.device().str() + " in a build without CUDA",
             "rebuild with -Dcuda=enabled");
#endif
  }
  param_.bump_version();
  ++steps_;
}

void SparseSGD::step_dense(const Tensor& dense_grad) {
  DP_CHECK(param_.device().is_cpu() && dense_grad.device().is_cpu() &&
               dense_grad.dtype() == DType::Float32 && dense_grad.numel() == param_.numel(),
           "SparseSGD::step_dense: needs a float32 CPU gradient shaped like the parameter, got " +
               dense_grad.str(),
           "use step(rows, grads) on CUDA");
  kernels::sparse_sgd_step_dense_cpu(param_.data<float>(), buf_.data<float>(),
                                     dense_grad.data<float>(), param_.numel(),
                                     static_cast<float>(options_.lr),
                                     static_cast<float>(options_.momentum), steps_ == 0);
  param_.bump_version();
  ++steps_;
}

}  // namespace dp::train
