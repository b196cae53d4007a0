// Checked wrapper for the fused data-parameter cross-entropy (kernels/data_param_ce.h).
#include "kernels/dispatch.h"
#include "kernels/training_ops.h"

namespace dp::kernels {

namespace {

// A tensor of `len` entries (len < 0: any) in `dtype` on `dev`; undefined passes when optional.
void check_vector(const Tensor& t, const char* what, int64_t len, DType dtype, Device dev, bool optional) {
  if (optional && !t.defined()) return;
  DP_CHECK(t.defined() && t.dim() == 1 && (len < 0 || t.size(0) == len) && t.dtype() == dtype &&
               t.device() == dev,
           fmt::format("data_param_cross_entropy: {} is {}, expected {}[{}] on {}", what,
                       t.defined() ? t.str() : "undefined", dtype_name(dtype),
                       len < 0 ? std::string("N") : std::to_string(len), dev.str()),
           "labels and dataset indices are int64 [batch]; data parameters have the logits' dtype");
}

}  // namespace

void data_param_ce(const DataParamCeTensors& t) {
  const Tensor& logits = t.logits;
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
  DP_CHECK(C > 0, "data_param_cross_entropy: logits " + logits.str() + " have no classes",
           "the model must output at least one class score per sample");
  check_vector(t.labels, "labels", B, DType::Int64, dev, false);
  check_vector(t.theta_class, "theta_class", C, dt, dev, true);
  check_vector(t.theta_inst, "theta_inst", -1, dt, dev, true);
  if (t.theta_inst.defined()) {
    DP_CHECK(t.indices.defined() && t.theta_inst.numel() > 0,
             "data_param_cross_entropy: instance parameters need dataset indices",
             "every training batch must carry the dataset index of each sample");
    check_vector(t.indices, "indices", B, DType::Int64, dev, false);
  }
  DP_CHECK(t.loss.defined() && t.loss.numel() == 1 && t.loss.dtype() == dt && t.loss.device() == dev,
           "data_param_cross_entropy: the loss output must be a scalar in the logits' dtype and device, got " +
               (t.loss.defined() ? t.loss.str() : std::string("undefined")),
           "allocate it with Tensor::empty({}, logits.dtype(), logits.device())");
  if (t.dlogits.defined())
    DP_CHECK(t.dlogits.shape() == logits.shape() && t.dlogits.dtype() == dt && t.dlogits.device() == dev &&
                 !t.dlogits.is_channels_last(),
             "data_param_cross_entropy: dlogits is " + t.dlogits.str() + ", expected the logits' " + logits.str(),
             "allocate it with Tensor::empty_like(logits)");
  for (const auto& [out, name] : {std::pair{&t.row_ce, "row_ce"}, {&t.sigma, "sigma"}, {&t.dsigma, "dsigma"},
                                  {&t.dtheta_class_rows, "dtheta_class_rows"},
                                  {&t.dtheta_inst_rows, "dtheta_inst_rows"}})
    check_vector(*out, name, B, dt, dev, true);
  DP_DISPATCH(dev, data_param_ce, t);
}

}  // namespace dp::kernels
