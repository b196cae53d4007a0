// The autograd engine: accumulation, grad mode, version checks, graph lifetime.
#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "kernels/ops.h"
#include "tests/common/gradcheck.h"

namespace dp {
namespace {

Tensor leaf(std::vector<double> v) {
  Tensor t = Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
  t.set_requires_grad(true);
  return t;
}

TEST(Autograd, TensorUsedTwiceAccumulates) {
  // y = relu(x) + x (a residual); dy/dx = [x>0] + 1.
  Tensor x = leaf({-1.0, 2.0, 3.0});
  kernels::sum(kernels::add(kernels::relu(x), x)).backward();
  EXPECT_EQ(x.grad().to_double_vector(), (std::vector<double>{1.0, 2.0, 2.0}));
}

TEST(Autograd, DiamondGraphSumsBothPaths) {
  Tensor x = leaf({1.0, -2.0});
  Tensor h = kernels::mul(x, 2.0);
  kernels::sum(kernels::add(kernels::mul(h, 3.0), kernels::mul(h, 5.0))).backward();
  EXPECT_EQ(x.grad().to_double_vector(), (std::vector<double>{16.0, 16.0}));
}

TEST(Autograd, LeafGradientsAccumulateAcrossBackwardCalls) {
  Tensor x = leaf({1.0, 2.0});
  kernels::sum(kernels::mul(x, 3.0)).backward();
  kernels::sum(kernels::mul(x, 4.0)).backward();
  EXPECT_EQ(x.grad().to_double_vector(), (std::vector<double>{7.0, 7.0}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

// Gradient-ready hooks: each leaf is reported once, when its gradient is final, in the order
// gradients become final, with the whole gradient already accumulated.
TEST(Autograd, GradReadyHookReportsEachLeafOnceWhenFinal) {
  // loss = sum(c·(b·(a·x))) + sum(a·y): a gets its second contribution last; b and c earlier.
  // [1, 1] matrices: matmul is the product of two tensors.
  auto scalar_leaf = [](double v) {
    Tensor t = Tensor::from_vector(std::vector<double>{v}, {1, 1});
    t.set_requires_grad(true);
    return t;
  };
  Tensor a = scalar_leaf(2.0), b = scalar_leaf(3.0), c = scalar_leaf(5.0);
  Tensor x = Tensor::from_vector(std::vector<double>{1.0}, {1, 1});  // no grad: never reported
  Tensor y = Tensor::from_vector(std::vector<double>{7.0}, {1, 1});
  Tensor h = kernels::matmul(a, x);
  Tensor h2 = kernels::matmul(b, h);
  Tensor h3 = kernels::matmul(c, h2);
  Tensor loss = kernels::add(kernels::sum(h3), kernels::sum(kernels::matmul(a, y)));
  std::vector<std::pair<const TensorImpl*, double>> ready;
  {
    GradReadyHookGuard guard([&](const Tensor& t) { ready.emplace_back(t.impl(), t.grad().item()); });
    loss.backward();
  }
  ASSERT_EQ(ready.size(), 3u);
  EXPECT_EQ(ready[0].first, c.impl());  // c's only edge is the first node reached
  EXPECT_EQ(ready[0].second, 6.0);      // b·a·x
  EXPECT_EQ(ready[1].first, b.impl());
  EXPECT_EQ(ready[1].second, 10.0);  // c·a·x
  EXPECT_EQ(ready[2].first, a.impl());
  EXPECT_EQ(ready[2].second, 22.0) << "reported after both contributions (15·x + y)";
  // The guard is gone: no more calls.
  kernels::sum(kernels::mul(a, 2.0)).backward();
  EXPECT_EQ(ready.size(), 3u);
}

TEST(Autograd, GradReadyHooksNestAndSeeLeafRoots) {
  Tensor a = leaf({1.0, 2.0});
  int outer = 0, inner = 0;
  GradReadyHookGuard g1([&](const Tensor&) { ++outer; });
  {
    GradReadyHookGuard g2([&](const Tensor&) { ++inner; });
    kernels::sum(kernels::mul(a, 3.0)).backward();
  }
  a.backward(Tensor::ones({2}, DType::Float64));  // a leaf as the root
  EXPECT_EQ(outer, 2);
  EXPECT_EQ(inner, 1);
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = leaf({1.0, 2.0});
  {
    NoGradGuard guard;
    Tensor y = kernels::mul(x, 2.0);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    EXPECT_THROW(kernels::sum(y).backward(), Error);
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_TRUE(kernels::mul(x, 2.0).requires_grad());
}

TEST(Autograd, InPlaceChangeOfASavedTensorIsCaught) {
  Tensor x = leaf({1.0, -2.0, 3.0});
  Tensor h = kernels::mul(x, 1.0);
  Tensor y = kernels::relu(h);  // relu saves its output
  Tensor loss = kernels::sum(y);
  {
    NoGradGuard guard;
    Tensor ones = Tensor::ones({3}, DType::Float64);
    kernels::add_(y, ones);  // modifies the saved output in place
  }
  try {
    loss.backward();
    FAIL() << "expected dp::Error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("modified in place"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("relu"), std::string::npos) << e.what();
  }
}

TEST(Autograd, InPlaceOnALeafRequiringGradIsRefused) {
  Tensor w = leaf({1.0, 2.0});
  Tensor d = Tensor::ones({2}, DType::Float64);
  try {
    kernels::add_(w, d);
    FAIL() << "expected dp::Error";
  } catch (const Error& e) {
    EXPECT_NE(e.hint().find("NoGradGuard"), std::string::npos) << e.what();
  }
  NoGradGuard guard;  // what optimisers do
  kernels::add_(w, d, -0.5);
  EXPECT_EQ(w.to_double_vector(), (std::vector<double>{0.5, 1.5}));
}

TEST(Autograd, BackwardTwiceNeedsRetainGraph) {
  Tensor x = leaf({1.0, 2.0});
  Tensor loss = kernels::sum(kernels::relu(kernels::mul(x, 2.0)));
  loss.backward(Tensor(), /*retain_graph=*/true);
  loss.backward();
  EXPECT_EQ(x.grad().to_double_vector(), (std::vector<double>{4.0, 4.0}));
  try {
    loss.backward();
    FAIL() << "expected dp::Error";
  } catch (const Error& e) {
    EXPECT_NE(e.hint().find("retain_graph"), std::string::npos) << e.what();
  }
}

TEST(Autograd, NonScalarBackwardNeedsAGradient) {
  Tensor x = leaf({1.0, 2.0});
  Tensor y = kernels::mul(x, 2.0);
  EXPECT_THROW(y.backward(), Error);
  y.backward(Tensor::from_vector(std::vector<double>{1.0, 10.0}, {2}));
  EXPECT_EQ(x.grad().to_double_vector(), (std::vector<double>{2.0, 20.0}));
}

TEST(Autograd, OnlyInputsRequiringGradReceiveGradients) {
  Tensor a = leaf({1.0, 2.0, 3.0, 4.0});
  Tensor b = Tensor::from_vector(std::vector<double>{1.0, 0.0, 0.0, 1.0}, {2, 2});
  kernels::sum(kernels::matmul(kernels::reshape(a, {2, 2}), b)).backward();
  EXPECT_TRUE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

// The harness itself: a node with a deliberately wrong backward must be caught.
struct WrongSquareNode final : Node {
  Tensor x;
  const char* name() const override { return "wrong_square"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    std::vector<double> gv = g.to_double_vector(), xv = x.to_double_vector();
    for (size_t i = 0; i < gv.size(); ++i) gv[i] *= (i == 2 ? 2.1 : 2.0) * xv[i];  // element 2 is off
    return {Tensor::from_vector(gv, x.shape())};
  }
};

Tensor square(const Tensor& x) {
  std::vector<double> v = x.to_double_vector();
  for (double& e : v) e *= e;
  Tensor y = Tensor::from_vector(v, x.shape());
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<WrongSquareNode>();
    node->x = x.detach();
    record_node(y, node, {x});
  }
  return y;
}

TEST(GradcheckHarness, CatchesAWrongGradientAndSkipsKinks) {
  Rng rng(61, 0);
  Tensor x = testing::random_tensor({5}, rng, 0.5, 1.5);
  auto result = testing::gradcheck([](auto& in) { return square(in[0]); }, {x});
  EXPECT_FALSE(result);
  EXPECT_NE(std::string(result.message()).find("element 2"), std::string::npos) << result.message();
  // relu exactly at its kink: skipped, the others checked.
  Tensor k = Tensor::from_vector(std::vector<double>{-1.0, 0.0, 2.0}, {3});
  auto relu_result = testing::gradcheck([](auto& in) { return kernels::relu(in[0]); }, {k});
  EXPECT_TRUE(relu_result);
  EXPECT_NE(std::string(relu_result.message()).find("1 skipped"), std::string::npos) << relu_result.message();
}

}  // namespace
}  // namespace dp
