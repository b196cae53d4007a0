// Autograd wrapper for the mean softmax cross-entropy loss.
#include "engine/autograd.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/softmax_ce.h"

namespace dp::kernels {

namespace {

// The forward kernel already wrote dlogits for a unit upstream gradient; backward scales it.
struct CrossEntropyNode final : Node {
  SavedTensor dlogits;
  explicit CrossEntropyNode(const Tensor& d) : dlogits(d) {}
  const char* name() const override { return "cross_entropy"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    // Scaled on the device by the upstream gradient (1 from backward() on the loss): no wait.
    return {scale_by(dlogits.get(name()), g)};
  }
  void release() override { dlogits.reset(); }
};

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  DP_CHECK(logits.defined() && labels.defined(), "cross_entropy: logits or labels undefined",
           "pass both tensors");
  // The loss is always computed in float32 from bf16 logits (autocast keeps the loss float32).
  if (logits.dtype() == DType::BFloat16) return cross_entropy(to_dtype(logits, DType::Float32), labels);
  detail::check_dim("cross_entropy", "logits", logits, 2);
  detail::check_float("cross_entropy", logits);
  detail::check_same_device("cross_entropy", logits, labels);
  DP_CHECK(labels.dtype() == DType::Int64,
           fmt::format("cross_entropy: labels must be int64, got {}", labels.str()),
           "convert the labels with .to(DType::Int64)");
  DP_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0),
           fmt::format("cross_entropy: labels {} do not match logits {}", labels.str(), logits.str()),
           "labels are [B] class indices for logits [B, num_classes]");
  DP_CHECK(logits.size(0) > 0 && logits.size(1) > 0,
           fmt::format("cross_entropy: empty logits {}", logits.str()), "");
  Tensor loss = Tensor::empty({}, logits.dtype(), logits.device());
  Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  DP_DISPATCH(logits.device(), softmax_ce_forward_backward, logits, labels, loss, dlogits);
  if (any_requires_grad({&logits}))
    record_node(loss, std::make_shared<CrossEntropyNode>(dlogits), {logits});
  return loss;
}

}  // namespace dp::kernels
