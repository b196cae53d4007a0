#include "train/data_param_loss.h"

#include "engine/autograd.h"
#include "kernels/ops.h"
#include "kernels/training_ops.h"

namespace dp::train {

namespace {

struct DataParamCeNode : Node {
  Tensor dlogits;  // ∂L/∂logits for an upstream gradient of 1, computed in the forward pass
  const char* name() const override { return "DataParamCrossEntropy"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    DP_CHECK(dlogits.defined(), "DataParamCrossEntropy: backward ran twice without retain_graph",
             "call backward once per forward, or pass retain_graph=true");
    // Scaled on the logits' device by the upstream gradient (1 from backward() on the loss).
    return {kernels::scale_by(dlogits, grad_output)};
  }
  void release() override { dlogits = Tensor(); }
};

}  // namespace

DataParamCeOutput data_param_cross_entropy(const Tensor& logits, const Tensor& labels,
                                           const Tensor& indices, const Tensor& theta_class,
                                           const Tensor& theta_inst, double wd_class,
                                           double wd_inst, double row_grad_scale) {
  DP_CHECK(logits.defined() && logits.dim() == 2,
           "data_param_cross_entropy: logits must be [batch, classes], got " +
               (logits.defined() ? logits.str() : std::string("an undefined tensor")),
           "flatten the model output to [batch, classes]");
  const int64_t B = logits.size(0);
  const Device dev = logits.device();
  const DType dt = logits.dtype();
  kernels::DataParamCeTensors t;
  t.logits = logits;
  t.labels = labels;
  t.indices = indices;
  t.theta_class = theta_class;
  t.theta_inst = theta_inst;
  t.wd_class = wd_class;
  t.wd_inst = wd_inst;
  t.row_grad_scale = row_grad_scale;
  t.loss = Tensor::empty({}, dt, dev);
  t.dlogits = Tensor::empty({logits.size(0), logits.size(1)}, dt, dev);
  t.row_ce = Tensor::empty({B}, dt, dev);
  t.sigma = Tensor::empty({B}, dt, dev);
  t.dsigma = Tensor::empty({B}, dt, dev);
  if (theta_class.defined()) t.dtheta_class_rows = Tensor::empty({B}, dt, dev);
  if (theta_inst.defined()) t.dtheta_inst_rows = Tensor::empty({B}, dt, dev);
  kernels::data_param_ce(t);  // checks every tensor, then runs on their device

  DataParamCeOutput out{t.loss, t.row_ce, t.sigma, t.dsigma, t.dtheta_class_rows, t.dtheta_inst_rows};
  if (any_requires_grad({&logits})) {
    auto node = std::make_shared<DataParamCeNode>();
    node->dlogits = t.dlogits;
    record_node(out.loss, node, {logits});
  }
  return out;
}

}  // namespace dp::train
