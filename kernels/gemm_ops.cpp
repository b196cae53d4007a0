// Autograd wrappers for matmul and linear.
#include "engine/autograd.h"
#include "kernels/autocast.h"
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"

namespace dp::kernels {

namespace {

void check_matrix(const char* op, const char* what, const Tensor& t) {
  DP_CHECK(t.defined(), fmt::format("{}: {} is undefined", op, what), "pass a tensor");
  detail::check_dim(op, what, t, 2);
  detail::check_float_or_bf16(op, t);
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) return;
  DP_CHECK(a.dtype() == b.dtype(), fmt::format("{}: dtypes differ ({} and {})", op, a.str(), b.str()),
           "convert both tensors to the same dtype with .to(dtype)");
}

struct MatmulNode final : Node {
  SavedTensor a, b;
  MatmulNode(const Tensor& a_, const Tensor& b_) : a(a_.detach()), b(b_.detach()) {}
  const char* name() const override { return "matmul"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    const Tensor& av = a.get(name());
    const Tensor& bv = b.get(name());
    Tensor da, db;
    if (inputs[0].requires_grad()) {  // dA = G·Bᵀ
      da = Tensor::empty(av.shape(), av.dtype(), av.device());
      DP_DISPATCH(g.device(), gemm, false, true, 1.0, g, bv, 0.0, da);
    }
    if (inputs[1].requires_grad()) {  // dB = Aᵀ·G
      db = Tensor::empty(bv.shape(), bv.dtype(), bv.device());
      DP_DISPATCH(g.device(), gemm, true, false, 1.0, av, g, 0.0, db);
    }
    return {da, db};
  }
  void release() override { a.reset(); b.reset(); }
};

struct LinearNode final : Node {
  SavedTensor x, w;
  LinearNode(const Tensor& x_, const Tensor& w_) : x(x_.detach()), w(w_.detach()) {}
  const char* name() const override { return "linear"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dx, dw, db;
    if (inputs[0].requires_grad()) {  // dx = G·W
      const Tensor& wv = w.get(name());
      dx = Tensor::empty(inputs[0].shape(), g.dtype(), g.device());
      DP_DISPATCH(g.device(), gemm, false, false, 1.0, g, wv, 0.0, dx);
    }
    if (inputs[1].requires_grad()) {  // dW = Gᵀ·x
      const Tensor& xv = x.get(name());
      dw = Tensor::empty(inputs[1].shape(), g.dtype(), g.device());
      DP_DISPATCH(g.device(), gemm, true, false, 1.0, g, xv, 0.0, dw);
    }
    if (inputs.size() > 2 && inputs[2].defined() && inputs[2].requires_grad()) {
      db = Tensor::empty(inputs[2].shape(), inputs[2].dtype(), g.device());  // float32 under autocast
      DP_DISPATCH(g.device(), sum_rows, g, db);
    }
    return {dx, dw, db};
  }
  void release() override { x.reset(); w.reset(); }
};

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (autocast::applies_to("matmul", {&a, &b})) return matmul(autocast::lower(a), autocast::lower(b));
  check_matrix("matmul", "a", a);
  check_matrix("matmul", "b", b);
  detail::check_same_device("matmul", a, b);
  check_same_dtype("matmul", a, b);
  DP_CHECK(a.size(1) == b.size(0),
           fmt::format("matmul: inner dimensions differ ({} x {})", a.str(), b.str()),
           "a is [M, K] and b must be [K, N]");
  Tensor c = Tensor::empty({a.size(0), b.size(1)}, a.dtype(), a.device());
  DP_DISPATCH(a.device(), gemm, false, false, 1.0, a, b, 0.0, c);
  if (any_requires_grad({&a, &b})) record_node(c, std::make_shared<MatmulNode>(a, b), {a, b});
  return c;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (autocast::applies_to("linear", {&x, &w})) {
    // bf16 input and weight, the bias stays float32 (added in float32 by the kernel).
    return linear(autocast::lower(x), autocast::lower_weight(w), b);
  }
  check_matrix("linear", "input", x);
  check_matrix("linear", "weight", w);
  detail::check_same_device("linear", x, w);
  detail::check_same_device("linear", x, b);
  check_same_dtype("linear", x, w);
  if (x.dtype() == DType::BFloat16) {  // bf16 data keeps a float32 bias (engine/autocast.h)
    DP_CHECK(!b.defined() || b.dtype() == DType::Float32,
             fmt::format("linear: a bf16 input needs a float32 bias, got {}", b.str()),
             "keep the parameters float32 and use dp::AutocastGuard");
  } else {
    check_same_dtype("linear", x, b);
  }
  DP_CHECK(x.size(1) == w.size(1),
           fmt::format("linear: input {} has {} features but weight {} expects {}", x.str(), x.size(1),
                       w.str(), w.size(1)),
           "the weight is [out_features, in_features]; flatten the input to [N, in_features]");
  if (b.defined()) {
    DP_CHECK(b.dim() == 1 && b.size(0) == w.size(0),
             fmt::format("linear: bias {} does not match weight {}", b.str(), w.str()),
             "the bias is [out_features]");
  }
  Tensor y = Tensor::empty({x.size(0), w.size(0)}, x.dtype(), x.device());
  DP_DISPATCH(x.device(), gemm, false, true, 1.0, x, w, 0.0, y);
  if (b.defined()) DP_DISPATCH(x.device(), bias_add_rows, y, b);
  if (any_requires_grad({&x, &w, &b})) record_node(y, std::make_shared<LinearNode>(x, w), {x, w, b});
  return y;
}

}  // namespace dp::kernels
