// Model SGD against PyTorch 1.13 (torch.optim.SGD, values printed by a 3-step script) and a
// hand computation; the learning-rate schedules at their boundaries.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/tensor.h"
#include "train/lr_schedule.h"
#include "train/sgd.h"

namespace {

using dp::Tensor;

struct SgdRun {
  std::vector<float> w1, w2, buf1;
};

SgdRun run_sgd(bool nesterov) {
  Tensor w1 = Tensor::from_vector(std::vector<float>{1.0f, -2.0f, 0.5f}, {3});
  Tensor w2 = Tensor::from_vector(std::vector<float>{0.25f, 3.0f}, {1, 2});
  w1.set_requires_grad(true);
  w2.set_requires_grad(true);
  dp::train::SGD opt({w1, w2}, dp::train::SgdOptions{0.1, 0.9, 5e-4, nesterov});
  const std::vector<std::vector<float>> g1 = {{0.5f, -1.0f, 0.125f}, {0.25f, 0.5f, -0.5f}, {-1.0f, 0.0f, 2.0f}};
  const std::vector<std::vector<float>> g2 = {{2.0f, -0.75f}, {1.0f, 1.0f}, {0.0f, -3.0f}};
  for (int s = 0; s < 3; ++s) {
    w1.set_grad(Tensor::from_vector(g1[s], {3}));
    w2.set_grad(Tensor::from_vector(g2[s], {1, 2}));
    opt.step();
  }
  return {w1.to_float_vector(), w2.to_float_vector(), opt.momentum_buffers()[0].to_float_vector()};
}

void expect_rel(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 2e-7 * std::abs(want[i]) + 1e-9) << i;
}

TEST(Sgd, MatchesPyTorchMomentumWeightDecay) {
  SgdRun r = run_sgd(false);
  expect_rel(r.w1, {0.916730225, -1.82345545, 0.360984623});
  expect_rel(r.w2, {-0.482027143, 3.31239939});
  expect_rel(r.buf1, {-0.368727565, -0.362594813, 1.65193486});
}

TEST(Sgd, MatchesPyTorchNesterov) {
  SgdRun r = run_sgd(true);
  expect_rel(r.w1, {0.949927866, -1.79083765, 0.212308705});
  expect_rel(r.w2, {-0.708779514, 3.5556972});
  expect_rel(r.buf1, {-0.368779361, -0.362536192, 1.65194738});
}

TEST(Sgd, HandComputedFirstTwoSteps) {
  Tensor w = Tensor::from_vector(std::vector<float>{1.0f}, {1});
  w.set_requires_grad(true);
  dp::train::SGD opt({w}, dp::train::SgdOptions{0.1, 0.9, 0.1, false});
  w.set_grad(Tensor::from_vector(std::vector<float>{0.5f}, {1}));
  opt.step();  // d = 0.5 + 0.1·1 = 0.6; buf = 0.6 (first step); w = 1 − 0.06
  EXPECT_FLOAT_EQ(w.to_float_vector()[0], 0.94f);
  EXPECT_FLOAT_EQ(opt.momentum_buffers()[0].to_float_vector()[0], 0.6f);
  opt.step();  // d = 0.5 + 0.094 = 0.594; buf = 0.54 + 0.594 = 1.134; w = 0.94 − 0.1134
  EXPECT_FLOAT_EQ(opt.momentum_buffers()[0].to_float_vector()[0], 1.134f);
  EXPECT_FLOAT_EQ(w.to_float_vector()[0], 0.8266f);
}

// Flat storage (train/sgd.h): a parameter without a gradient in a pass has a zero gradient and
// still takes part in the step (PyTorch would skip it while its .grad is None).
TEST(Sgd, ParameterWithoutGradientStepsWithZeroGradient) {
  Tensor a = Tensor::from_vector(std::vector<float>{1.0f}, {1});
  Tensor b = Tensor::from_vector(std::vector<float>{2.0f}, {1});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  dp::train::SGD opt({a, b}, dp::train::SgdOptions{0.1, 0.9, 0.5, false});
  EXPECT_FALSE(opt.momentum_buffers()[0].defined()) << "no buffers before the first step";
  a.set_grad(Tensor::from_vector(std::vector<float>{1.0f}, {1}));
  opt.step();
  // b: d = 0 + 0.5·2 = 1 (weight decay only); buf = 1; b = 2 − 0.1
  EXPECT_EQ(b.to_float_vector()[0], 1.9f);
  ASSERT_TRUE(opt.momentum_buffers()[1].defined());
  EXPECT_EQ(opt.momentum_buffers()[1].to_float_vector()[0], 1.0f);
  EXPECT_EQ(opt.momentum_buffers()[0].to_float_vector()[0], 1.5f);
}

TEST(Schedule, CifarMilestones) {
  auto s = dp::train::cifar_reference_schedule(0.1);
  EXPECT_DOUBLE_EQ(s->lr(0), 0.1);
  EXPECT_DOUBLE_EQ(s->lr(79.99), 0.1);
  EXPECT_DOUBLE_EQ(s->lr(80), 0.1 * std::pow(0.1, 1));
  EXPECT_DOUBLE_EQ(s->lr(99), 0.1 * std::pow(0.1, 1));
  EXPECT_DOUBLE_EQ(s->lr(100), 0.1 * std::pow(0.1, 2));
  EXPECT_DOUBLE_EQ(s->lr(159), 0.1 * std::pow(0.1, 2));
  EXPECT_DOUBLE_EQ(s->lr(160), 0.1 * std::pow(0.1, 3));
  EXPECT_NEAR(s->lr(100), 0.001, 1e-18);
}

TEST(Schedule, ImageNetStep) {
  auto s = dp::train::imagenet_reference_schedule(0.1);
  EXPECT_DOUBLE_EQ(s->lr(29.9), 0.1);
  EXPECT_DOUBLE_EQ(s->lr(30), 0.1 * 0.1);
  EXPECT_DOUBLE_EQ(s->lr(59), 0.1 * 0.1);
  EXPECT_DOUBLE_EQ(s->lr(60), 0.1 * std::pow(0.1, 2));
  EXPECT_DOUBLE_EQ(s->lr(90), 0.1 * std::pow(0.1, 3));
}

TEST(Schedule, CosineAndWarmup) {
  dp::train::CosineLr c(0.2, 100, 0.0);
  EXPECT_DOUBLE_EQ(c.lr(0), 0.2);
  EXPECT_NEAR(c.lr(50), 0.1, 1e-15);
  EXPECT_NEAR(c.lr(100), 0.0, 1e-15);
  EXPECT_NEAR(c.lr(200), 0.0, 1e-15);
  dp::train::LinearWarmupLr w(std::make_unique<dp::train::MultiStepLr>(0.4, std::vector<int>{10}, 0.1), 5, 0.0);
  EXPECT_DOUBLE_EQ(w.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(w.lr(2.5), 0.2);
  EXPECT_DOUBLE_EQ(w.lr(5), 0.4);
  EXPECT_DOUBLE_EQ(w.lr(10), 0.4 * 0.1);
}

}  // namespace
