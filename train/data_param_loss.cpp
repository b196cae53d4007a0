#include "train/data_param_loss.h"

#include <fmt/format.h>

#include "engine/autograd.h"
#include "kernels/ops.h"
#include "kernels/cpu/data_param_ce.h"

#ifdef DP_WITH_CUDA
#include "kernels/cuda/data_param_ce.h"
#include "engine/cuda/context.h"
#endif

namespace dp::train {

namespace {

struct DataParamCeNode : Node {
  Tensor dlogits;  // ∂L/∂logits for an upstream gradient of 1, computed in the forward pass
  const char* name() const override { return "DataParamCrossEntropy"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    DP_CHECK(dlogits.defined(), "DataParamCrossEntropy: backward ran twice without retain_graph",
             "call backward once per forward, or pass retain_graph=true");
    // Scaled on the logits' device by the upstream gradient (1 from backward() on the loss).
    return {ops::scale_by(dlogits, grad_output)};
  }
  void release() override { dlogits = Tensor(); }
};

template <class T>
DataParamCeOutput run(const Tensor& logits, const Tensor& labels, const Tensor& indices,
                      const Tensor& theta_class, const Tensor& theta_inst, double wd_class,
                      double wd_inst) {
  const int64_t B = logits.size(0), C = logits.size(1);
  const Device dev = logits.device();
  const DType dt = logits.dtype();
  DataParamCeOutput out;
  Tensor dlogits = Tensor::empty({B, C}, dt, dev);
  out.sigma = Tensor::empty({B}, dt, dev);
  out.dsigma = Tensor::empty({B}, dt, dev);
  kernels::DataParamCeArgs<T> a;
  a.logits = logits.data<T>();
  a.labels = labels.data<int64_t>();
  a.indices = indices.defined() ? indices.data<int64_t>() : nullptr;
  a.batch = B;
  a.num_classes = C;
  if (theta_class.defined()) {
    a.theta_class = theta_class.data<T>();
    a.wd_class = wd_class;
    out.dtheta_class_rows = Tensor::empty({B}, dt, dev);
    a.dtheta_class_rows = out.dtheta_class_rows.data<T>();
  }
  if (theta_inst.defined()) {
    a.theta_inst = theta_inst.data<T>();
    a.num_instances = theta_inst.numel();
    a.wd_inst = wd_inst;
    out.dtheta_inst_rows = Tensor::empty({B}, dt, dev);
    a.dtheta_inst_rows = out.dtheta_inst_rows.data<T>();
  }
  a.dlogits = dlogits.data<T>();
  a.sigma = out.sigma.data<T>();
  a.dsigma = out.dsigma.data<T>();
  if (dev.is_cpu()) {
    out.loss = Tensor::scalar(kernels::data_param_ce_cpu<T>(a), dt);
  } else {
#ifdef DP_WITH_CUDA
    out.loss = Tensor::empty({}, dt, dev);
    Tensor scratch = Tensor::empty({B}, dt, dev);
    const cuda::DeviceGuard guard(dev.index);
    kernels::data_param_ce_cuda<T>(a, out.loss.data<T>(), scratch.data<T>(), cuda::context(dev).stream());
#else
    DP_THROW("data_param_cross_entropy on " + dev.str() + " in a build without CUDA",
             "rebuild with -Dcuda=enabled or keep the tensors on the CPU");
#endif
  }
  if (any_requires_grad({&logits})) {
    auto node = std::make_shared<DataParamCeNode>();
    node->dlogits = dlogits;
    record_node(out.loss, node, {logits});
  }
  return out;
}

void check_vector(const Tensor& t, const char* what, int64_t len, DType dtype, Device dev) {
  DP_CHECK(t.dim() == 1 && (len < 0 || t.size(0) == len) && t.dtype() == dtype && t.device() == dev,
           fmt::format("data_param_cross_entropy: {} is {}, expected {}[{}] on {}", what, t.str(),
                       dtype_name(dtype), len < 0 ? std::string("N") : std::to_string(len), dev.str()),
           "labels and dataset indices are int64 [batch]; data parameters have the logits' dtype");
}

}  // namespace

DataParamCeOutput data_param_cross_entropy(const Tensor& logits, const Tensor& labels,
                                           const Tensor& indices, const Tensor& theta_class,
                                           const Tensor& theta_inst, double wd_class,
                                           double wd_inst) {
  DP_CHECK(logits.defined() && logits.dim() == 2,
           "data_param_cross_entropy: logits must be [batch, classes], got " +
               (logits.defined() ? logits.str() : std::string("an undefined tensor")),
           "flatten the model output to [batch, classes]");
  const Device dev = logits.device();
  const DType dt = logits.dtype();
  DP_CHECK(dt == DType::Float32 || dt == DType::Float64,
           std::string("data_param_cross_entropy: logits dtype ") + dtype_name(dt) + " is not supported",
           "cast the logits to float32 (mixed precision keeps the loss in float32)");
  const int64_t B = logits.size(0), C = logits.size(1);
  check_vector(labels, "labels", B, DType::Int64, dev);
  if (theta_class.defined()) check_vector(theta_class, "theta_class", C, dt, dev);
  if (theta_inst.defined()) {
    check_vector(theta_inst, "theta_inst", -1, dt, dev);
    DP_CHECK(indices.defined(), "data_param_cross_entropy: instance parameters need dataset indices",
             "every training batch must carry the dataset index of each sample");
    check_vector(indices, "indices", B, DType::Int64, dev);
  }
  if (dt == DType::Float64)
    return run<double>(logits, labels, indices, theta_class, theta_inst, wd_class, wd_inst);
  return run<float>(logits, labels, indices, theta_class, theta_inst, wd_class, wd_inst);
}

}  // namespace dp::train
