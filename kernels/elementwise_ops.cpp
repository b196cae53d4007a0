// Autograd wrappers for the elementwise ops and reductions.
#include "engine/autograd.h"
#include "kernels/autocast.h"
#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/ops.h"

namespace dp::kernels {

namespace {

// dy·[y > 0] (ReLU's gradient given its output y).
Tensor relu_grad(const Tensor& y, const Tensor& dy) {
  Tensor dx = Tensor::empty_like(dy);
  DP_DISPATCH(dy.device(), relu_backward, y, dy, dx);
  return dx;
}

// a + b, or relu(a + b) when the ReLU is fused (then the output is kept for its gate).
struct AddNode final : Node {
  SavedTensor out;
  bool fused;
  explicit AddNode(const Tensor& relu_out) : out(relu_out), fused(relu_out.defined()) {}
  const char* name() const override { return fused ? "add_relu" : "add"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    if (!fused) return {g, g};
    Tensor dx = relu_grad(out.get(name()), g);
    return {dx, dx};
  }
  void release() override { out.reset(); }
};

struct MulNode final : Node {
  double scalar;
  explicit MulNode(double s) : scalar(s) {}
  const char* name() const override { return "mul"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {mul(g, scalar)}; }
};

struct ReluNode final : Node {
  SavedTensor y;
  explicit ReluNode(const Tensor& out) : y(out.detach()) {}
  const char* name() const override { return "relu"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {relu_grad(y.get(name()), g)}; }
  void release() override { y.reset(); }
};

struct SumNode final : Node {
  Shape shape;
  MemoryFormat format;
  double factor;
  SumNode(const Tensor& x, double f) : shape(x.shape()), format(x.memory_format()), factor(f) {}
  const char* name() const override { return "sum"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dx = Tensor::empty(shape, g.dtype(), g.device(), format);
    DP_DISPATCH(g.device(), broadcast_scalar, g, factor, dx);
    return {dx};
  }
};

}  // namespace

void fill_(Tensor& t, double value) {
  DP_DISPATCH(t.device(), fill, t, value);
  t.bump_version();
}

Tensor cast(const Tensor& x, DType dtype) {
  Tensor y = Tensor::empty_like(x, dtype);
  DP_DISPATCH(x.device(), cast, x, y);
  return y;
}

namespace {
Tensor add_impl(const Tensor& a, const Tensor& b, bool relu) {
  detail::check_same_device("add", a, b);
  // Under autocast, a bf16 + float32 sum is computed in float32 (PyTorch's type promotion).
  if (autocast_enabled() && a.defined() && b.defined() && a.dtype() != b.dtype() &&
      is_floating(a.dtype()) && is_floating(b.dtype()))
    return add_impl(to_dtype(a, DType::Float32), to_dtype(b, DType::Float32), relu);
  DP_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype(),
           fmt::format("add: operands {} and {} differ", a.str(), b.str()),
           "add needs tensors of the same shape and dtype (no broadcasting)");
  if (b.memory_format() != a.memory_format()) return add_impl(a, to_memory_format(b, a.memory_format()), relu);
  Tensor out = Tensor::empty_like(a);
  DP_DISPATCH(a.device(), add, a, b, out, relu);
  if (any_requires_grad({&a, &b}))
    record_node(out, std::make_shared<AddNode>(relu ? out.detach() : Tensor()), {a, b});
  return out;
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return add_impl(a, b, false); }
Tensor add_relu(const Tensor& a, const Tensor& b) { return add_impl(a, b, true); }

void add_(Tensor& dst, const Tensor& src, double alpha) {
  detail::check_same_device("add_", dst, src);
  DP_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype(),
           fmt::format("add_: operands {} and {} differ", dst.str(), src.str()),
           "add_ needs tensors of the same shape and dtype");
  dst.check_inplace_allowed("add_");
  const Tensor same_format = convert(src, src.dtype(), dst.memory_format());
  DP_DISPATCH(dst.device(), axpy, alpha, same_format, dst);
  dst.bump_version();
}

Tensor mul(const Tensor& x, double scalar) {
  Tensor out = Tensor::empty_like(x);
  DP_DISPATCH(x.device(), scale, x, scalar, out);
  if (any_requires_grad({&x})) record_node(out, std::make_shared<MulNode>(scalar), {x});
  return out;
}

Tensor scale_by(const Tensor& x, const Tensor& s) {
  detail::check_same_device("scale_by", x, s);
  DP_CHECK(s.numel() == 1, "scale_by: the factor must have one element, got " + s.str(), "pass a scalar tensor");
  const Tensor factor = s.dtype() == x.dtype() ? s : cast(s, x.dtype());
  Tensor out = Tensor::empty_like(x);
  DP_DISPATCH(x.device(), scale_by_tensor, x, factor, out);
  return out;
}

Tensor relu(const Tensor& x) {
  Tensor out = Tensor::empty_like(x);
  DP_DISPATCH(x.device(), relu_forward, x, out);
  if (any_requires_grad({&x})) record_node(out, std::make_shared<ReluNode>(out), {x});
  return out;
}

Tensor sum(const Tensor& x) {
  Tensor out = Tensor::empty({}, x.dtype(), x.device());
  DP_DISPATCH(x.device(), sum_all, x, out);
  if (any_requires_grad({&x})) record_node(out, std::make_shared<SumNode>(x, 1.0), {x});
  return out;
}

Tensor mean(const Tensor& x) {
  DP_CHECK(x.numel() > 0, "mean of an empty tensor", "");
  double inv = 1.0 / static_cast<double>(x.numel());
  Tensor total = Tensor::empty({}, x.dtype(), x.device());
  DP_DISPATCH(x.device(), sum_all, x, total);
  Tensor out = Tensor::empty({}, x.dtype(), x.device());
  DP_DISPATCH(x.device(), scale, total, inv, out);
  if (any_requires_grad({&x})) record_node(out, std::make_shared<SumNode>(x, inv), {x});
  return out;
}

// ---- shape ----

namespace {
struct ReshapeNode final : Node {
  Shape input_shape;
  explicit ReshapeNode(Shape s) : input_shape(std::move(s)) {}
  const char* name() const override { return "reshape"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {g.view(input_shape)}; }
};
}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  if (x.is_channels_last()) return reshape(contiguous(x), shape);
  Tensor out = x.view(shape);
  if (any_requires_grad({&x})) record_node(out, std::make_shared<ReshapeNode>(x.shape()), {x});
  return out;
}

Tensor flatten(const Tensor& x, int64_t start_dim) {
  DP_CHECK(start_dim >= 0 && start_dim < std::max<int64_t>(x.dim(), 1),
           fmt::format("flatten: start_dim {} out of range for {}", start_dim, x.str()), "");
  Shape s(x.shape().begin(), x.shape().begin() + start_dim);
  s.push_back(-1);
  return reshape(x, s);
}

}  // namespace dp::kernels
