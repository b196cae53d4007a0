// Autograd wrapper for inverted dropout: backward re-derives the same Philox mask.
#include "engine/autograd.h"
#include "kernels/dispatch.h"
#include "kernels/dropout.h"
#include "kernels/ops.h"

namespace dp::kernels {

namespace {

struct DropoutNode final : Node {
  double p;
  uint64_t seed, stream;
  DropoutNode(double p_, uint64_t seed_, uint64_t stream_) : p(p_), seed(seed_), stream(stream_) {}
  const char* name() const override { return "dropout"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dx = Tensor::empty_like(g);
    DP_DISPATCH(g.device(), dropout_apply, g, p, seed, stream, dx);
    return {dx};
  }
};

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed, uint64_t stream) {
  DP_CHECK(x.defined(), "dropout: input is undefined", "pass a tensor");
  detail::check_float_or_bf16("dropout", x);
  DP_CHECK(p >= 0.0 && p <= 1.0, fmt::format("dropout: probability {} outside [0, 1]", p),
           "p is the probability of zeroing an element");
  if (!training || p == 0.0) return x;  // identity, like PyTorch in eval mode
  // The mask is indexed in NCHW order, so a channels-last x gets the same mask as its NCHW copy.
  if (x.is_channels_last())
    return to_memory_format(dropout(contiguous(x), p, training, seed, stream), MemoryFormat::ChannelsLast);
  Tensor y = Tensor::empty_like(x);
  DP_DISPATCH(x.device(), dropout_apply, x, p, seed, stream, y);
  if (any_requires_grad({&x})) record_node(y, std::make_shared<DropoutNode>(p, seed, stream), {x});
  return y;
}

}  // namespace dp::kernels
