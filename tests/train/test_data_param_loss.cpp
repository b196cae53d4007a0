// The data-parameter cross-entropy's autograd op (train/data_param_loss.h): the loss's upstream
// gradient scales the logit gradients, a data-parallel rank's share scales the cross-entropy part
// of the θ gradients only, shape checks. The kernel itself: tests/kernels/test_data_param_ce.cpp.
#include <gtest/gtest.h>

#include <vector>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/tensor.h"
#include "tests/common/data_param_problem.h"
#include "train/data_param_loss.h"

namespace {

using dp::testing::kJoint;
using dp::testing::Problem;
using dp::testing::Result;
using dp::testing::run_data_param_ce;

TEST(DataParamCe, TensorOpBackwardScalesLogitGradient) {
  Problem p(kJoint, true);
  const Result ref = run_data_param_ce(p.args());
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
