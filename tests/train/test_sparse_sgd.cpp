// SparseSGD: duplicate rows, the presence rules, the global first-step rule, untouched absent
// rows, equality with the dense reference, and the O(batch) clamp being bit-identical to the
// the method's clamp of every entry.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/error.h"
#include "engine/tensor.h"
#include "kernels/sparse_sgd.h"
#include "train/data_parameters.h"
#include "train/sparse_sgd.h"

namespace {

using dp::Tensor;
using dp::train::SparseSGD;
using dp::train::SparseSgdOptions;

Tensor f32(const std::vector<float>& v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); }
Tensor i64(const std::vector<int64_t>& v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); }

TEST(SparseSgd, DuplicateRowsGetOneUpdateWithTheSummedGradient) {
  Tensor theta = f32({0.f, 0.f, 0.f, 0.f});
  SparseSGD opt(theta, SparseSgdOptions{0.5, 0.9, dp::train::SparsePresence::NonZeroGrad});
  opt.step(i64({2, 0, 2, 2}), f32({1.f, 3.f, 0.25f, 0.5f}));
  auto t = theta.to_float_vector();
  auto b = opt.momentum_buffer().to_float_vector();
  EXPECT_EQ(b[2], 1.75f);
  EXPECT_EQ(t[2], -0.5f * 1.75f);
  EXPECT_EQ(b[0], 3.f);
  EXPECT_EQ(t[1], 0.f);
  EXPECT_EQ(b[1], 0.f);
  EXPECT_EQ(opt.last_updated_rows(), (std::vector<int64_t>{0, 2}));
  // Second step: momentum applies once per unique row.
  opt.step(i64({2, 2}), f32({1.f, 1.f}));
  b = opt.momentum_buffer().to_float_vector();
  EXPECT_EQ(b[2], 0.9f * 1.75f + 2.f);
  EXPECT_EQ(b[0], 3.f) << "absent row: momentum does not decay";
}

TEST(SparseSgd, ZeroGradientRowIsAbsentByDefaultAndPresentInBatchMode) {
  for (auto presence : {dp::train::SparsePresence::NonZeroGrad, dp::train::SparsePresence::InBatch}) {
    Tensor theta = f32({1.f, 1.f, 1.f});
    SparseSGD opt(theta, SparseSgdOptions{0.1, 0.9, presence});
    opt.step(i64({0, 1}), f32({1.f, 1.f}));
    // Row 1's gradient is exactly zero now; row 2 cancels out to zero (+0.5 − 0.5).
    opt.step(i64({0, 1, 2, 2}), f32({1.f, 0.f, 0.5f, -0.5f}));
    auto b = opt.momentum_buffer().to_float_vector();
    auto t = theta.to_float_vector();
    if (presence == dp::train::SparsePresence::NonZeroGrad) {
      EXPECT_EQ(b[1], 1.f);
      EXPECT_EQ(t[1], 1.f - 0.1f * 1.f);
      EXPECT_EQ(b[2], 0.f);
      EXPECT_EQ(t[2], 1.f);
    } else {
      EXPECT_EQ(b[1], 0.9f * 1.f);
      EXPECT_EQ(t[1], (1.f - 0.1f * 1.f) - 0.1f * (0.9f * 1.f));
      EXPECT_EQ(b[2], 0.f);  // present with g = 0: buf = 0.9·0 + 0
    }
  }
}

TEST(SparseSgd, FirstStepRuleIsGlobal) {
  Tensor theta = f32({0.f, 0.f});
  SparseSGD opt(theta, SparseSgdOptions{1.0, 0.9, dp::train::SparsePresence::NonZeroGrad});
  // Pretend a previous run left momentum (e.g. a buffer restored without the step count).
  float* buf = opt.momentum_buffer().data<float>();
  buf[0] = 10.f;
  buf[1] = 10.f;
  opt.step(i64({0}), f32({1.f}));  // first step call: buf ← g, ignoring the old buffer
  EXPECT_EQ(opt.momentum_buffer().to_float_vector()[0], 1.f);
  opt.step(i64({1}), f32({1.f}));  // row 1 first seen now: no longer the first step
  EXPECT_EQ(opt.momentum_buffer().to_float_vector()[1], 0.9f * 10.f + 1.f);
  EXPECT_EQ(opt.steps(), 2);
}

TEST(SparseSgd, MatchesDenseReferenceBitForBit) {
  const int64_t N = 50, B = 24;
  std::mt19937 gen(11);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_int_distribution<int64_t> row(0, N - 1);
  Tensor sparse_theta = f32(std::vector<float>(N, 0.3f));
  SparseSGD sparse(sparse_theta, SparseSgdOptions{0.2, 0.9, dp::train::SparsePresence::NonZeroGrad});
  Tensor dense_theta = f32(std::vector<float>(N, 0.3f));
  SparseSGD dense(dense_theta, SparseSgdOptions{0.2, 0.9, dp::train::SparsePresence::NonZeroGrad});
  for (int step = 0; step < 30; ++step) {
    std::vector<int64_t> rows(B);
    std::vector<float> grads(B), dense_grad(N, 0.f);
    for (int64_t b = 0; b < B; ++b) {
      rows[b] = row(gen);
      grads[b] = (b % 7 == 3) ? 0.f : normal(gen);
      dense_grad[rows[b]] += grads[b];
    }
    sparse.step(i64(rows), f32(grads));
    dense.step_dense(f32(dense_grad));
  }
  auto a = sparse_theta.to_float_vector(), b = dense_theta.to_float_vector();
  auto ba = sparse.momentum_buffer().to_float_vector(), bb = dense.momentum_buffer().to_float_vector();
  for (int64_t i = 0; i < N; ++i) {
    EXPECT_EQ(a[i], b[i]) << i;
    EXPECT_EQ(ba[i], bb[i]) << i;
  }
}

// The rate is read from a float32 scalar on the parameter's device (as the model SGD's), so a
// changed rate reaches a step that a CUDA graph replays: set_lr() gives bit for bit the steps of
// an optimiser built with that rate.
TEST(SparseSgd, LearningRateIsReadFromTheDeviceScalar) {
  Tensor changed = f32({0.f, 0.f, 0.f}), built = f32({0.f, 0.f, 0.f});
  SparseSGD a(changed, SparseSgdOptions{0.1, 0.9, dp::train::SparsePresence::NonZeroGrad});
  SparseSGD b(built, SparseSgdOptions{0.35, 0.9, dp::train::SparsePresence::NonZeroGrad});
  a.set_lr(0.35);
  EXPECT_EQ(a.lr_tensor().to_float_vector(), std::vector<float>{0.35f});
  EXPECT_EQ(a.options().lr, 0.35);
  for (int step = 0; step < 3; ++step) {
    a.step(i64({0, 2, 2}), f32({1.f, 0.5f, -2.f}));
    b.step(i64({0, 2, 2}), f32({1.f, 0.5f, -2.f}));
  }
  EXPECT_EQ(changed.to_float_vector(), built.to_float_vector());
  EXPECT_NE(changed.to_float_vector()[0], 0.f);
  EXPECT_THROW(a.set_lr(-1.0), dp::Error);
}

TEST(SparseSgd, RejectsRowsOutsideTheParameter) {
  Tensor theta = f32({0.f, 0.f});
  SparseSGD opt(theta, SparseSgdOptions{});
  EXPECT_THROW(opt.step(i64({2}), f32({1.f})), dp::Error);
  EXPECT_THROW(opt.step(i64({0, 1}), f32({1.f})), dp::Error);
}

TEST(DataParameters, InitIsLogInDoubleStoredAsFloat) {
  dp::train::DataParamConfig cfg;
  cfg.learn_class_parameters = cfg.learn_inst_parameters = true;
  cfg.init_inst_param = 0.001;
  dp::train::DataParameters params(cfg, 10, 100);
  EXPECT_EQ(params.theta_class().to_float_vector()[3], 0.0f);
  EXPECT_EQ(params.theta_inst().to_float_vector()[99], static_cast<float>(std::log(0.001)));
  EXPECT_EQ(dp::train::data_param_clamp_hi(), 2.9957323f);
  EXPECT_EQ(dp::train::data_param_clamp_lo(), -2.9957323f);
}

// Trains with the O(batch) clamp and, alongside, the method's literal algorithm (dense gradient,
// dense step, clamp of every entry); the two must agree bit for bit, including the first clamp
// of init values outside the range and rows pushed past both bounds.
TEST(DataParameters, BatchClampIsBitIdenticalToClampingEveryEntry) {
  const int64_t C = 5, N = 40, B = 8;
  dp::train::DataParamConfig cfg;
  cfg.learn_class_parameters = cfg.learn_inst_parameters = true;
  cfg.init_inst_param = 0.001;  // below the range: the first clamp must catch every entry
  cfg.lr_class_param = 0.5;
  cfg.lr_inst_param = 30.0;  // large: rows hit both bounds
  cfg.wd_class_param = 1e-3;
  dp::train::DataParameters params(cfg, C, N);
  Tensor ref_c = params.theta_class().clone(), ref_i = params.theta_inst().clone();
  Tensor buf_c = Tensor::zeros({C}), buf_i = Tensor::zeros({N});
  std::mt19937 gen(5);
  std::normal_distribution<float> normal(0.f, 4.f);
  std::uniform_int_distribution<int64_t> cls(0, C - 1), inst(0, N - 1);
  const float lo = dp::train::data_param_clamp_lo(), hi = dp::train::data_param_clamp_hi();
  int hits_lo = 0, hits_hi = 0;
  for (int step = 0; step < 40; ++step) {
    std::vector<float> logits(B * C);
    std::vector<int64_t> labels(B), indices(B);
    for (float& v : logits) v = normal(gen);
    for (int64_t b = 0; b < B; ++b) {
      labels[b] = cls(gen);
      indices[b] = inst(gen);
    }
    auto out = params.loss(Tensor::from_vector(logits, {B, C}), i64(labels), i64(indices));
    // Reference: dense gradients from the per-row ones, dense steps, clamp everything.
    std::vector<float> gc(C, 0.f), gi(N, 0.f);
    auto rc = out.dtheta_class_rows.to_float_vector(), ri = out.dtheta_inst_rows.to_float_vector();
    for (int64_t b = 0; b < B; ++b) {
      gc[labels[b]] += rc[b];
      gi[indices[b]] += ri[b];
    }
    dp::kernels::cpu::sparse_sgd_step_dense(ref_c, buf_c, f32(gc), 0.5f, 0.9f, step == 0);
    dp::kernels::cpu::sparse_sgd_step_dense(ref_i, buf_i, f32(gi), 30.0f, 0.9f, step == 0);
    dp::kernels::cpu::clamp_all(ref_c, lo, hi);
    dp::kernels::cpu::clamp_all(ref_i, lo, hi);
    params.step();
    auto tc = params.theta_class().to_float_vector(), ti = params.theta_inst().to_float_vector();
    ASSERT_EQ(0, std::memcmp(tc.data(), ref_c.data<float>(), C * sizeof(float))) << "step " << step;
    ASSERT_EQ(0, std::memcmp(ti.data(), ref_i.data<float>(), N * sizeof(float))) << "step " << step;
    for (float v : ti) {
      hits_lo += v == lo;
      hits_hi += v == hi;
    }
  }
  EXPECT_GT(hits_lo, 0);
  EXPECT_GT(hits_hi, 0);
}

TEST(DataParameters, SigmaStatistics) {
  Tensor theta = f32({std::log(0.5f), std::log(1.0f), std::log(2.0f), std::log(4.0f)});
  auto s = dp::train::sigma_stats(theta, 4);
  EXPECT_EQ(s.count, 4);
  EXPECT_NEAR(s.highest, 4.0, 1e-6);
  EXPECT_NEAR(s.lowest, 0.5, 1e-7);
  EXPECT_NEAR(s.mean, 7.5 / 4, 1e-6);
  const double m = 7.5 / 4;
  const double var = ((0.5 - m) * (0.5 - m) + (1 - m) * (1 - m) + (2 - m) * (2 - m) + (4 - m) * (4 - m)) / 3;
  EXPECT_NEAR(s.std, std::sqrt(var), 1e-6);
  EXPECT_EQ(s.bucket_counts, (std::vector<int64_t>{2, 1, 0, 1}));
  auto split = dp::train::sigma_stats_split(theta, {1, 0, 0, 1}, 2);
  EXPECT_EQ(split.corrupted.count, 2);
  EXPECT_NEAR(split.corrupted.mean, 2.25, 1e-6);
  EXPECT_NEAR(split.clean.mean, 1.5, 1e-6);
  EXPECT_EQ(split.all.count, 4);
}

}  // namespace
