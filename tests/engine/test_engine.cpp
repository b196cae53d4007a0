// The engine library alone: this executable links dp_engine and no kernel, so it also shows
// that engine/ has no dependency on kernels/. Its primitives (engine/primitives.h) are a small
// float32 CPU set written here.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/primitives.h"
#include "engine/tensor.h"

namespace dp {
namespace {

std::vector<float> values(const Tensor& t) {
  const float* p = t.data<float>();
  return std::vector<float>(p, p + t.numel());
}

Tensor vec(std::vector<float> v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); }

// ---- a minimal float32, contiguous, CPU primitive set ----
void fill(Tensor& t, double value) {
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(value);
}
Tensor same(const Tensor& x, DType dtype) {
  DP_CHECK(dtype == x.dtype(), "test primitives convert nothing", "float32 only");
  return x;
}
Tensor convert(const Tensor& x, DType dtype, MemoryFormat format) {
  DP_CHECK(format == x.memory_format(), "test primitives convert nothing", "contiguous only");
  return same(x, dtype);
}
void accumulate(Tensor& dst, const Tensor& src) {
  float* d = dst.data<float>();
  const float* s = src.data<float>();
  for (int64_t i = 0; i < dst.numel(); ++i) d[i] += s[i];
}
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = a.clone();
  accumulate(out, b);
  return out;
}

class Engine : public ::testing::Test {
 protected:
  void SetUp() override { previous_ = register_engine_primitives({&fill, &same, &convert, &add, &accumulate}); }
  void TearDown() override { register_engine_primitives(previous_); }
  EnginePrimitives previous_;
};

// y = k·x as a hand-written node: the engine's contract for ops, without any op library.
struct ScaleNode : Node {
  float k;
  explicit ScaleNode(float k) : k(k) {}
  const char* name() const override { return "Scale"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor out = Tensor::empty(g.shape());
    for (int64_t i = 0; i < g.numel(); ++i) out.data<float>()[i] = k * g.data<float>()[i];
    return {out};
  }
};
Tensor scale(const Tensor& x, float k) {
  Tensor y = Tensor::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) y.data<float>()[i] = k * x.data<float>()[i];
  if (any_requires_grad({&x})) record_node(y, std::make_shared<ScaleNode>(k), {x});
  return y;
}
// z = a + b (same shapes).
struct AddNode : Node {
  const char* name() const override { return "Add"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {g, g}; }
};
Tensor plus(const Tensor& a, const Tensor& b) {
  Tensor z = add(a, b);
  if (any_requires_grad({&a, &b})) record_node(z, std::make_shared<AddNode>(), {a, b});
  return z;
}

TEST(EnginePrimitives, MissingPrimitiveIsAClearError) {
  const EnginePrimitives previous = register_engine_primitives({});
  try {
    Tensor::zeros({3});
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'fill' is not registered"), std::string::npos) << what;
    EXPECT_NE(what.find("link the kernel library"), std::string::npos) << what;
  }
  EXPECT_NO_THROW(Tensor::empty({3})) << "allocation needs no primitive";
  register_engine_primitives(previous);
}

TEST_F(Engine, ViewsShareStorageAndOffsets) {
  Tensor flat = vec({0, 1, 2, 3, 4, 5, 6, 7});
  Tensor v = flat.view_at(2, {2, 2});
  EXPECT_EQ(values(v), (std::vector<float>{2, 3, 4, 5}));
  EXPECT_TRUE(v.shares_storage(flat));
  EXPECT_EQ(values(v.view_at(1, {2})), (std::vector<float>{3, 4})) << "offsets compose";
  EXPECT_THROW(flat.view_at(7, {2}), Error);
  Tensor p = Tensor::full({2, 2}, 9.0);
  Tensor other_handle = p;
  p.set_data(v);
  EXPECT_EQ(values(other_handle), (std::vector<float>{2, 3, 4, 5})) << "every handle sees set_data";
  flat.data<float>()[3] = 30.f;
  EXPECT_EQ(values(p)[1], 30.f);
  EXPECT_THROW(p.set_data(flat), Error) << "shape mismatch";
}

TEST_F(Engine, AutogradAccumulatesThroughHandWrittenNodes) {
  Tensor x = vec({1, 2});
  x.set_requires_grad(true);
  Tensor y = plus(scale(x, 3.f), scale(x, 5.f));  // dy/dx = 8
  y.backward(vec({1, 1}));
  EXPECT_EQ(values(x.grad()), (std::vector<float>{8, 8}));
  y = plus(scale(x, 3.f), scale(x, 5.f));
  y.backward(vec({1, 1}));
  EXPECT_EQ(values(x.grad()), (std::vector<float>{16, 16})) << "across passes";
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST_F(Engine, BoundGradientAccumulatesInPlace) {
  Tensor grads = Tensor::zeros({8});
  Tensor x = vec({1, 2});
  x.set_requires_grad(true);
  x.bind_grad(grads.view_at(4, {2}));
  ASSERT_TRUE(x.grad_is_bound());
  plus(scale(x, 3.f), scale(x, 5.f)).backward(vec({1, 1}));
  EXPECT_EQ(values(grads), (std::vector<float>{0, 0, 0, 0, 8, 8, 0, 0}));
  x.zero_grad();
  EXPECT_EQ(values(grads)[4], 0.f);
  EXPECT_TRUE(x.grad_is_bound()) << "zero_grad keeps the binding";
  x.mutable_grad() = vec({1, 1});
  EXPECT_FALSE(x.grad_is_bound()) << "assigning a new tensor unbinds";
}

TEST_F(Engine, GradReadyHookOrderAndCount) {
  // z = a·2 + (b·3 + a·4)·5: b is final after the inner nodes; a only after both branches.
  Tensor a = vec({1}), b = vec({1});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  Tensor z = plus(scale(a, 2.f), scale(plus(scale(b, 3.f), scale(a, 4.f)), 5.f));
  std::vector<std::pair<const TensorImpl*, float>> ready;
  GradReadyHookGuard hook([&](const Tensor& leaf) { ready.emplace_back(leaf.impl(), leaf.grad().data<float>()[0]); });
  z.backward(vec({1}));
  ASSERT_EQ(ready.size(), 2u) << "each leaf once";
  EXPECT_EQ(ready[0].first, b.impl()) << "b's only edge is visited before a's last one";
  EXPECT_EQ(ready[0].second, 15.f);
  EXPECT_EQ(ready[1].first, a.impl());
  EXPECT_EQ(ready[1].second, 22.f) << "reported with both contributions (2 + 4·5)";
  EXPECT_EQ(values(a.grad())[0], 22.f);
}

}  // namespace
}  // namespace dp
