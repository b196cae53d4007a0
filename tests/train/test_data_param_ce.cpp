// The fused data-parameter cross-entropy: finite-difference gradients (float64) in every mode,
// with repeated classes, duplicate instances and the weight-decay penalties; stability at the
// extremes; the Tensor-level op and its autograd node.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/tensor.h"
#include "kernels/training_ops.h"
#include "train/data_param_loss.h"

namespace {

using dp::kernels::DataParamCeTensors;
using dp::Tensor;

enum Mode { kClass = 1, kInst = 2, kJoint = 3 };

template <class T>
Tensor vec(const std::vector<T>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
}

// Host copies of the op's outputs (empty where not requested).
struct Result {
  double loss = 0.0;
  std::vector<double> dlogits, row_ce, sigma, dsigma, gc_rows, gi_rows;
};

// Runs kernels::data_param_ce on CPU tensors, asking for every output when `all` is set.
Result run(DataParamCeTensors t, bool all = true) {
  const dp::DType dt = t.logits.dtype();
  const int64_t B = t.logits.size(0);
  t.loss = Tensor::empty({}, dt);
  if (all) {
    t.dlogits = Tensor::empty(t.logits.shape(), dt);
    t.row_ce = Tensor::empty({B}, dt);
    t.sigma = Tensor::empty({B}, dt);
    t.dsigma = Tensor::empty({B}, dt);
    if (t.theta_class.defined()) t.dtheta_class_rows = Tensor::empty({B}, dt);
    if (t.theta_inst.defined()) t.dtheta_inst_rows = Tensor::empty({B}, dt);
  }
  dp::kernels::data_param_ce(t);
  auto host = [](const Tensor& x) { return x.defined() ? x.to_double_vector() : std::vector<double>{}; };
  return {t.loss.item(),    host(t.dlogits), host(t.row_ce),           host(t.sigma),
          host(t.dsigma), host(t.dtheta_class_rows), host(t.dtheta_inst_rows)};
}

struct Problem {
  int64_t B = 12, C = 7, N = 20;
  std::vector<double> logits, theta_c, theta_i;
  std::vector<int64_t> labels, indices;
  double wd_c = 0.0, wd_i = 0.0;
  Mode mode = kJoint;

  explicit Problem(Mode m, bool decay, unsigned seed = 7) : mode(m) {
    std::mt19937 gen(seed);
    std::normal_distribution<double> normal(0.0, 3.0);
    std::uniform_real_distribution<double> uni(-1.5, 1.5);
    logits.resize(B * C);
    for (double& v : logits) v = normal(gen);
    theta_c.resize(C);
    theta_i.resize(N);
    for (double& v : theta_c) v = uni(gen);
    for (double& v : theta_i) v = uni(gen);
    // Repeated classes (class 2 four times, class 5 twice) and a duplicate dataset index.
    labels = {2, 0, 2, 5, 1, 2, 5, 3, 2, 4, 6, 0};
    indices = {3, 17, 8, 0, 19, 11, 8, 5, 14, 2, 9, 6};
    if (decay) {
      wd_c = 0.3;
      wd_i = 0.2;
    }
  }

  DataParamCeTensors args() const {
    DataParamCeTensors a;
    a.logits = Tensor::from_vector(logits, {B, C});
    a.labels = vec(labels);
    a.indices = vec(indices);
    if (mode & kClass) a.theta_class = vec(theta_c);
    if (mode & kInst) a.theta_inst = vec(theta_i);
    a.wd_class = wd_c;
    a.wd_inst = wd_i;
    return a;
  }
  double loss() const { return run(args(), false).loss; }
};

void expect_close(double analytic, double numeric, const char* what, int64_t i) {
  const double tol = 1e-7 + 1e-6 * std::max(std::abs(analytic), std::abs(numeric));
  EXPECT_NEAR(analytic, numeric, tol) << what << "[" << i << "]";
}

void check_gradients(Mode mode, bool decay) {
  Problem p(mode, decay);
  const Result r = run(p.args());
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
      return run(q, false).loss;
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
  const Result r = run(p.args());
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
  double want_q = run(qa).loss;
  qa.wd_class = 123.0;
  EXPECT_EQ(run(qa).loss, want_q);
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
  EXPECT_NEAR(run(a).loss, want, 1e-12);
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
    const Result r = run(a);  // float32 outputs, read back through double (exact)
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
  EXPECT_THROW(run(a), dp::Error);
  a = p.args();
  std::vector<int64_t> bad_idx = p.indices;
  bad_idx[1] = -1;
  a.indices = vec(bad_idx);
  EXPECT_THROW(run(a), dp::Error);
}

TEST(DataParamCe, TensorOpBackwardScalesLogitGradient) {
  Problem p(kJoint, true);
  const Result ref = run(p.args());
  const std::vector<double>&ref_dl = ref.dlogits, &ref_gc = ref.gc_rows, &ref_gi = ref.gi_rows;
  const double ref_loss = ref.loss;

  dp::Tensor logits = dp::Tensor::from_vector(p.logits, {p.B, p.C});
  logits.set_requires_grad(true);
  auto out = dp::train::data_param_cross_entropy(
      logits, dp::Tensor::from_vector(p.labels, {p.B}), dp::Tensor::from_vector(p.indices, {p.B}),
      dp::Tensor::from_vector(p.theta_c, {p.C}), dp::Tensor::from_vector(p.theta_i, {p.N}), p.wd_c,
      p.wd_i);
  EXPECT_DOUBLE_EQ(out.loss.item(), ref_loss);
  out.loss.backward(dp::Tensor::scalar(2.5, dp::DType::Float64));
  const auto g = logits.grad().to_double_vector();
  for (size_t k = 0; k < g.size(); ++k) EXPECT_DOUBLE_EQ(g[k], 2.5 * ref_dl[k]);
  const auto gc = out.dtheta_class_rows.to_double_vector();
  const auto gi = out.dtheta_inst_rows.to_double_vector();
  for (int64_t b = 0; b < p.B; ++b) {
    EXPECT_DOUBLE_EQ(gc[b], ref_gc[b]);
    EXPECT_DOUBLE_EQ(gi[b], ref_gi[b]);
  }
}

TEST(DataParamCe, RowGradScaleScalesTheCrossEntropyPartOnly) {
  // A data-parallel rank's share (train/data_parallel.h): s·(CE part) + wd·θ[row], the
  // penalty's part unscaled; the loss and the logit gradients unchanged.
  Problem p(kJoint, true);
  auto call = [&](double scale) {
    return dp::train::data_param_cross_entropy(
        dp::Tensor::from_vector(p.logits, {p.B, p.C}), dp::Tensor::from_vector(p.labels, {p.B}),
        dp::Tensor::from_vector(p.indices, {p.B}), dp::Tensor::from_vector(p.theta_c, {p.C}),
        dp::Tensor::from_vector(p.theta_i, {p.N}), p.wd_c, p.wd_i, scale);
  };
  const auto one = call(1.0), half = call(0.5);
  EXPECT_EQ(half.loss.item(), one.loss.item());
  const auto gc1 = one.dtheta_class_rows.to_double_vector(), gc = half.dtheta_class_rows.to_double_vector();
  const auto gi1 = one.dtheta_inst_rows.to_double_vector(), gi = half.dtheta_inst_rows.to_double_vector();
  for (int64_t b = 0; b < p.B; ++b) {
    const double dc = p.wd_c * p.theta_c[static_cast<size_t>(p.labels[b])];
    const double di = p.wd_i * p.theta_i[static_cast<size_t>(p.indices[b])];
    EXPECT_NEAR(gc[b], 0.5 * (gc1[b] - dc) + dc, 1e-12) << "row " << b;
    EXPECT_NEAR(gi[b], 0.5 * (gi1[b] - di) + di, 1e-12) << "row " << b;
  }
}

TEST(DataParamCe, TensorOpChecksShapes) {
  dp::Tensor logits = dp::Tensor::zeros({4, 3});
  dp::Tensor labels = dp::Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 0}, {4});
  dp::Tensor wrong = dp::Tensor::zeros({5});
  EXPECT_THROW(dp::train::data_param_cross_entropy(logits, labels, dp::Tensor(), wrong, dp::Tensor(), 0, 0),
               dp::Error);
  EXPECT_THROW(dp::train::data_param_cross_entropy(logits, labels, dp::Tensor(), dp::Tensor(),
                                                   dp::Tensor::zeros({10}), 0, 0),
               dp::Error);  // instance parameters without indices
}

}  // namespace
