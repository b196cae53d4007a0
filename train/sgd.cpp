#include "train/sgd.h"

#include <fmt/format.h>

#include <cmath>

#ifdef DP_WITH_CUDA
#include "kernels/cuda/sgd.h"
#include "engine/cuda/context.h"
#endif

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
}

void SGD::zero_grad() {
  for (Tensor& p : params_) p.zero_grad();
}

void SGD::step() {
  const float lr = static_cast<float>(options_.lr), m = static_cast<float>(options_.momentum),
              wd = static_cast<float>(options_.weight_decay);
  if (params_.empty()) return;
  const bool cuda = params_[0].device().is_cuda();
  std::vector<SgdSpan> spans;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    DP_CHECK(g.dtype() == DType::Float32 && g.numel() == p.numel() && g.device() == p.device(),
             fmt::format("SGD: gradient {} does not match parameter {}", g.str(), p.str()),
             "gradients must have the parameter's shape, dtype and device");
    bool first = false;
    if (options_.momentum != 0.0 && !bufs_[i].defined()) {
      bufs_[i] = Tensor::empty(p.shape(), DType::Float32, p.device());
      first = true;
    }
    float* buf = options_.momentum != 0.0 ? bufs_[i].data<float>() : nullptr;
    spans.push_back({p.data<float>(), g.data<float>(), buf, p.numel(), first});
    p.bump_version();
  }
  if (options_.momentum == 0.0) {
    // Plain SGD: w ← w − lr·(g + wd·w). Route through the same code with buf = a scratch copy.
    for (SgdSpan& s : spans) s.first = true;
  }
  std::vector<Tensor> scratch;
  if (options_.momentum == 0.0) {
    for (SgdSpan& s : spans) {
      scratch.push_back(Tensor::empty({s.n}, DType::Float32, params_[0].device()));
      s.buf = scratch.back().data<float>();
    }
  }
  if (!cuda) {
    sgd_step_cpu(spans, lr, m, wd, options_.nesterov);
    return;
  }
#ifdef DP_WITH_CUDA
  for (size_t start = 0; start < spans.size(); start += kernels::kSgdMaxTensors) {
    kernels::SgdTensorTable t;
    for (size_t k = start; k < spans.size() && t.count < kernels::kSgdMaxTensors; ++k, ++t.count) {
      t.w[t.count] = spans[k].w;
      t.g[t.count] = spans[k].g;
      t.buf[t.count] = spans[k].buf;
      t.n[t.count] = spans[k].n;
      t.first[t.count] = spans[k].first ? 1 : 0;
    }
    const cuda::DeviceGuard guard(params_[0].device().index);
    kernels::sgd_step_cuda(t, lr, m, wd, options_.nesterov, cuda::context(params_[0].device()).stream());
  }
#else
  DP_THROW("SGD on CUDA tensors in a build without CUDA", "rebuild with -Dcuda=enabled");
#endif
}

}  // namespace dp::train
