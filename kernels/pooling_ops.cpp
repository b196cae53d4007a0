// Autograd wrappers for max, average and global average pooling, and their geometry.
#include "engine/autograd.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/pooling.h"

namespace dp {

kernels::Pool2dGeometry kernels::Pool2dGeometry::make(const Shape& x, int64_t kernel, int64_t stride, int64_t pad) {
  DP_CHECK(x.size() == 4, fmt::format("pool2d: input must be [N, C, H, W], got {}", shape_str(x)),
           "add a batch dimension with reshape()");
  DP_CHECK(kernel >= 1 && stride >= 1 && pad >= 0,
           fmt::format("pool2d: kernel {}, stride {}, padding {} invalid", kernel, stride, pad),
           "kernel and stride must be >= 1, padding >= 0");
  DP_CHECK(2 * pad <= kernel,
           fmt::format("pool2d: padding {} is more than half the kernel {}", pad, kernel),
           "padding must be at most kernel / 2 (PyTorch's rule)");
  kernels::Pool2dGeometry g{x[0], x[1], x[2], x[3], kernel, stride, pad, 0, 0};
  DP_CHECK(g.h + 2 * pad >= kernel && g.w + 2 * pad >= kernel,
           fmt::format("pool2d: kernel {} larger than the padded input {}x{}", kernel, g.h + 2 * pad,
                       g.w + 2 * pad),
           "use a smaller kernel or a larger input");
  g.p = (g.h + 2 * pad - kernel) / stride + 1;
  g.q = (g.w + 2 * pad - kernel) / stride + 1;
  return g;
}

namespace kernels {

namespace {

struct MaxPoolNode final : Node {
  SavedTensor argmax;
  kernels::Pool2dGeometry geom;
  MaxPoolNode(const Tensor& a, const kernels::Pool2dGeometry& g) : argmax(a), geom(g) {}
  const char* name() const override { return "max_pool2d"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dx = Tensor::empty_like(inputs[0], g.dtype());
    DP_DISPATCH(g.device(), max_pool2d_backward, g, argmax.get(name()), dx, geom);
    return {dx};
  }
  void release() override { argmax.reset(); }
};

struct AvgPoolNode final : Node {
  kernels::Pool2dGeometry geom;
  explicit AvgPoolNode(const kernels::Pool2dGeometry& g) : geom(g) {}
  const char* name() const override { return "avg_pool2d"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dx = Tensor::empty_like(inputs[0], g.dtype());
    DP_DISPATCH(g.device(), avg_pool2d_backward, g, dx, geom);
    return {dx};
  }
};

struct GlobalAvgPoolNode final : Node {
  const char* name() const override { return "global_avg_pool"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dx = Tensor::empty_like(inputs[0], g.dtype());
    DP_DISPATCH(g.device(), global_avg_pool_backward, g, dx);
    return {dx};
  }
};

void check_input(const char* op, const Tensor& x) {
  DP_CHECK(x.defined(), fmt::format("{}: input is undefined", op), "pass a tensor");
  detail::check_dim(op, "input", x, 4);
  detail::check_float_or_bf16(op, x);
}

}  // namespace

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  check_input("max_pool2d", x);
  if (detail::cpu_channels_last(x))
    return to_memory_format(max_pool2d(contiguous(x), kernel, stride, padding), MemoryFormat::ChannelsLast);
  const kernels::Pool2dGeometry g = kernels::Pool2dGeometry::make(x.shape(), kernel, stride, padding);
  DP_CHECK(g.h * g.w <= INT32_MAX, "max_pool2d: plane too large for int32 argmax", "");
  // argmax is laid out like y (CUDA kernels walk them together); it holds h·W+w either way.
  Tensor y = Tensor::empty({g.n, g.c, g.p, g.q}, x.dtype(), x.device(), x.memory_format());
  Tensor argmax = Tensor::empty({g.n, g.c, g.p, g.q}, DType::Int32, x.device(), x.memory_format());
  DP_DISPATCH(x.device(), max_pool2d_forward, x, y, argmax, g);
  if (any_requires_grad({&x})) record_node(y, std::make_shared<MaxPoolNode>(argmax, g), {x});
  return y;
}

Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  check_input("avg_pool2d", x);
  if (detail::cpu_channels_last(x))
    return to_memory_format(avg_pool2d(contiguous(x), kernel, stride, padding), MemoryFormat::ChannelsLast);
  const kernels::Pool2dGeometry g = kernels::Pool2dGeometry::make(x.shape(), kernel, stride, padding);
  Tensor y = Tensor::empty({g.n, g.c, g.p, g.q}, x.dtype(), x.device(), x.memory_format());
  DP_DISPATCH(x.device(), avg_pool2d_forward, x, y, g);
  if (any_requires_grad({&x})) record_node(y, std::make_shared<AvgPoolNode>(g), {x});
  return y;
}

Tensor global_avg_pool(const Tensor& x) {
  check_input("global_avg_pool", x);
  if (detail::cpu_channels_last(x)) return global_avg_pool(contiguous(x));
  Tensor y = Tensor::empty({x.size(0), x.size(1)}, x.dtype(), x.device());
  DP_DISPATCH(x.device(), global_avg_pool_forward, x, y);
  if (any_requires_grad({&x})) record_node(y, std::make_shared<GlobalAvgPoolNode>(), {x});
  return y;
}

}  // namespace kernels
}  // namespace dp
