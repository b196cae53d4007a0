// Autograd wrapper for conv2d, and the geometry shared by both backends.
#include "engine/autograd.h"
#include "kernels/autocast.h"
#include "kernels/conv2d.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

namespace dp {

kernels::Conv2dGeometry kernels::Conv2dGeometry::make(const Shape& x, const Shape& w, int64_t stride, int64_t pad) {
  DP_CHECK(x.size() == 4, fmt::format("conv2d: input must be [N, C, H, W], got {}", shape_str(x)),
           "add a batch dimension with reshape()");
  DP_CHECK(w.size() == 4, fmt::format("conv2d: weight must be [K, C, R, S], got {}", shape_str(w)),
           "the weight layout is [out_channels, in_channels, kernel_h, kernel_w]");
  DP_CHECK(x[1] == w[1],
           fmt::format("conv2d: input {} has {} channels but weight {} expects {}", shape_str(x), x[1],
                       shape_str(w), w[1]),
           "check in_channels of the layer against the previous layer's out_channels");
  DP_CHECK(stride >= 1 && pad >= 0, fmt::format("conv2d: stride {} / padding {} invalid", stride, pad),
           "stride must be >= 1 and padding >= 0");
  kernels::Conv2dGeometry g{x[0], x[1], x[2], x[3], w[0], w[2], w[3], stride, pad, 0, 0};
  DP_CHECK(g.h + 2 * pad >= g.r && g.w + 2 * pad >= g.s,
           fmt::format("conv2d: kernel {}x{} larger than the padded input {}x{}", g.r, g.s,
                       g.h + 2 * pad, g.w + 2 * pad),
           "use a smaller kernel, more padding, or a larger input");
  g.p = (g.h + 2 * pad - g.r) / stride + 1;
  g.q = (g.w + 2 * pad - g.s) / stride + 1;
  return g;
}

namespace kernels {

namespace {

struct Conv2dNode final : Node {
  SavedTensor x, w;
  kernels::Conv2dGeometry geom;
  Conv2dNode(const Tensor& x_, const Tensor& w_, const kernels::Conv2dGeometry& g)
      : x(x_.detach()), w(w_.detach()), geom(g) {}
  const char* name() const override { return "conv2d"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dx, dw, db;
    if (inputs[0].requires_grad()) {
      const Tensor& wv = w.get(name());
      dx = Tensor::empty(inputs[0].shape(), g.dtype(), g.device(), inputs[0].memory_format());
      DP_DISPATCH(g.device(), conv2d_backward_data, g, wv, dx, geom);
    }
    const bool want_b = inputs[2].defined() && inputs[2].requires_grad();
    if (inputs[1].requires_grad() || want_b) {
      const Tensor& xv = x.get(name());
      dw = Tensor::empty(inputs[1].shape(), g.dtype(), g.device(), inputs[1].memory_format());
      // A float32 bias beside bf16 data (autocast) gets its gradient in float32 directly.
      if (want_b) db = Tensor::empty(inputs[2].shape(), inputs[2].dtype(), g.device());
      DP_DISPATCH(g.device(), conv2d_backward_weight, xv, g, dw, db, geom);
      if (!inputs[1].requires_grad()) dw = Tensor();
    }
    return {dx, dw, db};
  }
  void release() override { x.reset(); w.reset(); }
};

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t padding) {
  DP_CHECK(x.defined() && w.defined(), "conv2d: input or weight is undefined", "pass both tensors");
  if (detail::cpu_channels_last(x))
    return to_memory_format(conv2d(contiguous(x), w, b, stride, padding), MemoryFormat::ChannelsLast);
  // The convolution runs in x's memory format: a channels-last x takes a KRSC copy of the weight
  // (cuDNN's NHWC kernels want both), whose gradient goes back to the KCRS parameter.
  const MemoryFormat format = x.memory_format();
  if (autocast::applies_to("conv2d", {&x, &w})) {
    // bf16 input and weight, the bias stays float32 (added in float32 by the kernel).
    return conv2d(autocast::lower(x), autocast::lower_weight(w, format), b, stride, padding);
  }
  if (w.defined() && w.memory_format() != format && !formats_coincide(w.shape()))
    return conv2d(x, to_memory_format(w, format), b, stride, padding);
  detail::check_float_or_bf16("conv2d", x);
  detail::check_same_device("conv2d", x, w);
  detail::check_same_device("conv2d", x, b);
  // bf16 data keeps a float32 bias (the bf16 mode of engine/autocast.h).
  const DType bias_dtype = x.dtype() == DType::BFloat16 ? DType::Float32 : x.dtype();
  const bool bias_ok = !b.defined() || b.dtype() == bias_dtype;
  DP_CHECK(w.dtype() == x.dtype() && bias_ok,
           fmt::format("conv2d: dtypes differ (input {}, weight {}, bias {})", x.str(), w.str(), b.str()),
           "convert the input or the parameters with .to(dtype)");
  const kernels::Conv2dGeometry g = kernels::Conv2dGeometry::make(x.shape(), w.shape(), stride, padding);
  if (b.defined()) {
    DP_CHECK(b.dim() == 1 && b.size(0) == g.k,
             fmt::format("conv2d: bias {} does not match {} output channels", b.str(), g.k),
             "the bias is [out_channels]");
  }
  Tensor y = Tensor::empty({g.n, g.k, g.p, g.q}, x.dtype(), x.device(), format);
  DP_DISPATCH(x.device(), conv2d_forward, x, w, b, y, g);
  if (any_requires_grad({&x, &w, &b})) record_node(y, std::make_shared<Conv2dNode>(x, w, g), {x, w, b});
  return y;
}

}  // namespace kernels
}  // namespace dp
