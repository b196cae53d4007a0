// The data_param_ce family (kernels/data_param_ce.h): the fused data-parameter cross-entropy's
// finite-difference gradients (float64) in every mode, with repeated classes, duplicate
// instances and the weight-decay penalties; stability at the extremes; input checks; CUDA
// against the CPU in every mode. Its autograd op (train/data_param_loss.h) is tested in
// tests/train/test_data_param_loss.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/error.h"
#include "engine/tensor.h"
#include "kernels/training_ops.h"
#include "tests/common/data_param_problem.h"
#include "tests/common/devices.h"

namespace {

using dp::kernels::DataParamCeTensors;
using dp::Tensor;
using dp::testing::kClass;
using dp::testing::kInst;
using dp::testing::kJoint;
using dp::testing::Mode;
using dp::testing::Problem;
using dp::testing::Result;
using dp::testing::run_data_param_ce;
using dp::testing::vec;

void expect_close(double analytic, double numeric, const char* what, int64_t i) {
  const double tol = 1e-7 + 1e-6 * std::max(std::abs(analytic), std::abs(numeric));
  EXPECT_NEAR(analytic, numeric, tol) << what << "[" << i << "]";
}

void check_gradients(Mode mode, bool decay) {
  Problem p(mode, decay);
  const Result r = run_data_param_ce(p.args());
  const std::vector<double>&dlogits = r.dlogits, &dsig = r.dsigma, &gc_rows = r.gc_rows, &gi_rows = r.gi_rows,
                           &sig = r.sigma;
  const double h = 1e-5;
  auto fd = [&](double& x) {
    const double x0 = x;
    x = x0 + h;
    const double lp = p.loss();
    x = x0 - h;
    const double lm = p.loss();
    x = x0;
    return (lp - lm) / (2 * h);
  };
  for (int64_t k = 0; k < p.B * p.C; ++k) expect_close(dlogits[k], fd(p.logits[k]), "dlogits", k);
  if (mode & kClass) {
    std::vector<double> dense(p.C, 0.0);
    for (int64_t b = 0; b < p.B; ++b) dense[p.labels[b]] += gc_rows[b];
    for (int64_t c = 0; c < p.C; ++c) expect_close(dense[c], fd(p.theta_c[c]), "dtheta_class", c);
  }
  if (mode & kInst) {
    std::vector<double> dense(p.N, 0.0);
    for (int64_t b = 0; b < p.B; ++b) dense[p.indices[b]] += gi_rows[b];
    for (int64_t i = 0; i < p.N; ++i) expect_close(dense[i], fd(p.theta_i[i]), "dtheta_inst", i);
  }
  // ∂L/∂σ*: perturb σ* through a pure instance-level problem whose θ_inst = log σ*.
  for (int64_t b = 0; b < p.B; ++b) {
    std::vector<double> theta(p.B);
    std::vector<int64_t> rows(p.B);
    for (int64_t r = 0; r < p.B; ++r) {
      theta[r] = std::log(sig[r]);
      rows[r] = r;
    }
    auto loss_at = [&](double s) {
      std::vector<double> t = theta;
      t[b] = std::log(s);
      DataParamCeTensors q;
      q.logits = Tensor::from_vector(p.logits, {p.B, p.C});
      q.labels = vec(p.labels);
      q.indices = vec(rows);
      q.theta_inst = vec(t);
      return run_data_param_ce(q, false).loss;
    };
    const double hs = 1e-6 * sig[b];
    const double numeric = (loss_at(sig[b] + hs) - loss_at(sig[b] - hs)) / (2 * hs);
    expect_close(dsig[b], numeric, "dsigma", b);
  }
}

TEST(DataParamCe, GradientsClassLevel) { check_gradients(kClass, false); }
TEST(DataParamCe, GradientsClassLevelWithDecay) { check_gradients(kClass, true); }
TEST(DataParamCe, GradientsInstanceLevel) { check_gradients(kInst, false); }
TEST(DataParamCe, GradientsInstanceLevelWithDecay) { check_gradients(kInst, true); }
TEST(DataParamCe, GradientsJoint) { check_gradients(kJoint, false); }
TEST(DataParamCe, GradientsJointWithDecay) { check_gradients(kJoint, true); }

TEST(DataParamCe, LossIsMeanCePlusSummedPenalties) {
  Problem p(kJoint, true);
  const Result r = run_data_param_ce(p.args());
  const std::vector<double>&ce = r.row_ce, &sig = r.sigma;
  const double loss = r.loss;
  double want = 0.0;
  for (int64_t b = 0; b < p.B; ++b) {
    const int64_t y = p.labels[b];
    const double s = std::exp(p.theta_c[y]) + std::exp(p.theta_i[p.indices[b]]);
    EXPECT_NEAR(sig[b], s, 1e-14 * s);
    double lse = 0.0;
    for (int64_t j = 0; j < p.C; ++j) lse += std::exp(p.logits[b * p.C + j] / s);
    const double row = std::log(lse) - p.logits[b * p.C + y] / s;
    EXPECT_NEAR(ce[b], row, 1e-12);
    want += row / p.B;
    // A class seen k times contributes k times; so does a duplicated instance.
    want += 0.5 * p.wd_c * p.theta_c[y] * p.theta_c[y] + 0.5 * p.wd_i * p.theta_i[p.indices[b]] * p.theta_i[p.indices[b]];
  }
  EXPECT_NEAR(loss, want, 1e-12);
  // No penalty for a kind that is not learnt even when its wd > 0.
  Problem q(kInst, true);
  auto qa = q.args();
  double want_q = run_data_param_ce(qa).loss;
  qa.wd_class = 123.0;
  EXPECT_EQ(run_data_param_ce(qa).loss, want_q);
}

TEST(DataParamCe, NoDataParametersIsPlainCrossEntropy) {
  Problem p(kJoint, false);
  auto a = p.args();
  a.theta_class = a.theta_inst = Tensor();
  double want = 0.0;
  for (int64_t b = 0; b < p.B; ++b) {
    double lse = 0.0;
    for (int64_t j = 0; j < p.C; ++j) lse += std::exp(p.logits[b * p.C + j]);
    want += (std::log(lse) - p.logits[b * p.C + p.labels[b]]) / p.B;
  }
  EXPECT_NEAR(run_data_param_ce(a).loss, want, 1e-12);
}

TEST(DataParamCe, StableForLargeLogitsAndExtremeSigma) {
  const int64_t B = 4, C = 1000;
  std::vector<float> logits(B * C);
  std::mt19937 gen(3);
  std::normal_distribution<float> normal(0.0f, 1000.0f);
  for (float& v : logits) v = normal(gen);
  logits[5] = 1e4f;  // huge winning logit on row 0 (its label)
  std::vector<int64_t> labels = {5, 17, 999, 0}, indices = {0, 1, 2, 3};
  for (float sigma : {0.05f, 1.0f, 40.0f}) {
    std::vector<float> theta(4, std::log(sigma));
    DataParamCeTensors a;
    a.logits = Tensor::from_vector(logits, {B, C});
    a.labels = vec(labels);
    a.indices = vec(indices);
    a.theta_inst = vec(theta);
    const Result r = run_data_param_ce(a);  // float32 outputs, read back through double (exact)
    const std::vector<double>&dl = r.dlogits, &gi = r.gi_rows, &ce = r.row_ce;
    const double loss = r.loss;
    ASSERT_TRUE(std::isfinite(loss)) << "sigma " << sigma;
    EXPECT_GE(loss, 0.0);
    EXPECT_EQ(ce[0], 0.0f) << "a winning margin of 1e4/σ gives p = 1 exactly";
    for (int64_t b = 0; b < B; ++b) {
      ASSERT_TRUE(std::isfinite(gi[b]));
      double row_sum = 0.0;
      for (int64_t j = 0; j < C; ++j) {
        ASSERT_TRUE(std::isfinite(dl[b * C + j]));
        row_sum += dl[b * C + j];
      }
      EXPECT_NEAR(row_sum, 0.0, 1e-6) << "softmax gradients sum to zero per row";
    }
    EXPECT_EQ(gi[0], 0.0f) << "p = onehot: the row's σ gradient underflows to exactly zero";
  }
}

TEST(DataParamCe, RejectsBadLabelsAndIndices) {
  Problem p(kJoint, false);
  auto a = p.args();
  std::vector<int64_t> bad = p.labels;
  bad[3] = p.C;
  a.labels = vec(bad);
  EXPECT_THROW(run_data_param_ce(a), dp::Error);
  a = p.args();
  std::vector<int64_t> bad_idx = p.indices;
  bad_idx[1] = -1;
  a.indices = vec(bad_idx);
  EXPECT_THROW(run_data_param_ce(a), dp::Error);
}

// ---- CUDA against the CPU, every mode ----

struct CeCase {
  int mode;  // 1 class, 2 instance, 3 joint, 0 none
  int64_t B, C;
  bool decay;
};

class DataParamCeCuda : public ::testing::TestWithParam<CeCase> {
 protected:
  void SetUp() override { DP_SKIP_WITHOUT_CUDA(); }
};

TEST_P(DataParamCeCuda, MatchesCpu) {
  const CeCase cs = GetParam();
  const int64_t B = cs.B, C = cs.C, N = 5000;
  std::mt19937 gen(42);
  std::normal_distribution<float> normal(0.f, 4.f);
  std::uniform_real_distribution<float> uni(std::log(0.05f), std::log(20.f));
  std::uniform_int_distribution<int64_t> cls(0, C - 1), inst(0, N - 1);
  std::vector<float> logits(B * C), tc(C), ti(N);
  std::vector<int64_t> labels(B), indices(B);
  for (float& v : logits) v = normal(gen);
  for (float& v : tc) v = uni(gen);
  for (float& v : ti) v = uni(gen);
  for (int64_t b = 0; b < B; ++b) {
    labels[b] = cls(gen);
    indices[b] = inst(gen);
  }
  logits[0 * C + labels[0]] = 3000.f;  // a row whose σ gradient underflows to zero

  dp::kernels::DataParamCeTensors a;
  a.logits = Tensor::from_vector(logits, {B, C});
  a.labels = vec(labels);
  a.indices = vec(indices);
  if (cs.mode & 1) a.theta_class = vec(tc);
  if (cs.mode & 2) a.theta_inst = vec(ti);
  a.wd_class = cs.decay ? 1e-4 : 0.0;
  a.wd_inst = cs.decay ? 1e-3 : 0.0;
  // The same problem with its inputs on `device`, every output allocated there.
  auto on = [&](dp::Device device) {
    dp::kernels::DataParamCeTensors t;
    t.logits = a.logits.to(device);
    t.labels = a.labels.to(device);
    t.indices = a.indices.to(device);
    if (a.theta_class.defined()) t.theta_class = a.theta_class.to(device);
    if (a.theta_inst.defined()) t.theta_inst = a.theta_inst.to(device);
    t.wd_class = a.wd_class;
    t.wd_inst = a.wd_inst;
    t.loss = Tensor::empty({}, dp::DType::Float32, device);
    t.dlogits = Tensor::empty({B, C}, dp::DType::Float32, device);
    for (Tensor* out : {&t.sigma, &t.dsigma, &t.dtheta_class_rows, &t.dtheta_inst_rows})
      *out = Tensor::empty({B}, dp::DType::Float32, device);
    if (!t.theta_class.defined()) t.dtheta_class_rows = Tensor();
    if (!t.theta_inst.defined()) t.dtheta_inst_rows = Tensor();
    dp::kernels::data_param_ce(t);
    return t;
  };
  const dp::kernels::DataParamCeTensors c = on(dp::Device::cpu()), g = on(dp::Device::cuda());
  const double cpu_loss = c.loss.item();
  EXPECT_NEAR(g.loss.item(), cpu_loss, 1e-5 * std::abs(cpu_loss));
  // Relative to max(|expected|, 1e-3 of the largest).
  auto rel = [](double r) { return dp::testing::Tolerance{r, 1e-30, 1e-3}; };
  EXPECT_TRUE(dp::testing::all_close(g.dlogits, c.dlogits, rel(1e-4), "dlogits"));
  EXPECT_TRUE(dp::testing::all_close(g.sigma, c.sigma, rel(1e-6), "sigma"));
  EXPECT_TRUE(dp::testing::all_close(g.dsigma, c.dsigma, rel(1e-3), "dsigma"));
  if (cs.mode & 1) {
    EXPECT_TRUE(dp::testing::all_close(g.dtheta_class_rows, c.dtheta_class_rows, rel(1e-3), "dtheta_class_rows"));
  }
  if (cs.mode & 2) {
    EXPECT_TRUE(dp::testing::all_close(g.dtheta_inst_rows, c.dtheta_inst_rows, rel(1e-3), "dtheta_inst_rows"));
  }
  if ((cs.mode & 2) && !cs.decay) {
    EXPECT_EQ(g.dtheta_inst_rows.to_float_vector()[0], 0.0f) << "underflow row must be exactly 0";
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, DataParamCeCuda,
                         ::testing::Values(CeCase{1, 256, 1000, true}, CeCase{2, 256, 1000, false},
                                           CeCase{3, 256, 1000, true}, CeCase{3, 128, 100, false},
                                           CeCase{2, 128, 10, true}, CeCase{0, 64, 10, false},
                                           CeCase{3, 7, 37, true}));

}  // namespace
