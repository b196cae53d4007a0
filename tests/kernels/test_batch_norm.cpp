// batch_norm: training and eval against a naive reference, running-statistics update,
// finite differences in both modes, device comparison.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/ops.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

namespace dp {
namespace {

using testing::random_tensor;

struct NaiveBn {
  std::vector<double> y, mean, var_biased, var_unbiased;
};

// x as [N, C, L].
NaiveBn naive_bn_train(const std::vector<double>& x, const std::vector<double>& g,
                       const std::vector<double>& b, int64_t N, int64_t C, int64_t L, double eps) {
  NaiveBn out;
  out.y.resize(x.size());
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) s += x[(n * C + c) * L + l];
    const double m = s / (N * L);
    double v = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) v += (x[(n * C + c) * L + l] - m) * (x[(n * C + c) * L + l] - m);
    out.mean.push_back(m);
    out.var_biased.push_back(v / (N * L));
    out.var_unbiased.push_back(v / (N * L - 1));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        const size_t i = static_cast<size_t>((n * C + c) * L + l);
        out.y[i] = (x[i] - m) / std::sqrt(v / (N * L) + eps) * g[c] + b[c];
      }
  }
  return out;
}

class BatchNormTest : public testing::DeviceTest {};

TEST_P(BatchNormTest, TrainingMatchesNaiveAndUpdatesRunningStats) {
  Rng rng(21, 0);
  for (bool four_d : {true, false}) {
    SCOPED_TRACE(four_d ? "NCHW" : "NC");
    const Shape shape = four_d ? Shape{3, 4, 5, 3} : Shape{6, 4};
    const int64_t N = shape[0], C = 4, L = four_d ? 15 : 1;
    Tensor x = random_tensor(shape, rng, -2, 3, DType::Float32);
    Tensor g = random_tensor({C}, rng, 0.5, 1.5, DType::Float32), b = random_tensor({C}, rng, -1, 1, DType::Float32);
    Tensor rm = random_tensor({C}, rng, -1, 1, DType::Float32), rv = random_tensor({C}, rng, 0.5, 2, DType::Float32);
    Tensor rm_d = rm.to(device()).clone(), rv_d = rv.to(device()).clone();
    const uint64_t v0 = rm_d.version();
    Tensor y = kernels::batch_norm(x.to(device()), g.to(device()), b.to(device()), rm_d, rv_d, true, 0.1, 1e-5);
    EXPECT_GT(rm_d.version(), v0) << "the running statistics were updated in place: their version must move";
    NaiveBn ref = naive_bn_train(x.to_double_vector(), g.to_double_vector(), b.to_double_vector(), N, C, L, 1e-5);
    const testing::Tolerance tol{1e-5, 1e-5};
    EXPECT_TRUE(testing::all_close(y, Tensor::from_vector(ref.y, shape), tol, "y"));
    std::vector<double> want_rm, want_rv;
    auto rm0 = rm.to_double_vector(), rv0 = rv.to_double_vector();
    for (int64_t c = 0; c < C; ++c) {
      want_rm.push_back(0.9 * rm0[c] + 0.1 * ref.mean[c]);
      want_rv.push_back(0.9 * rv0[c] + 0.1 * ref.var_unbiased[c]);  // unbiased, like PyTorch
    }
    EXPECT_TRUE(testing::all_close(rm_d, Tensor::from_vector(want_rm, {C}), tol, "running_mean"));
    EXPECT_TRUE(testing::all_close(rv_d, Tensor::from_vector(want_rv, {C}), tol, "running_var"));
  }
}

TEST_P(BatchNormTest, EvalUsesRunningStatistics) {
  Rng rng(22, 0);
  Tensor x = random_tensor({2, 3, 4, 4}, rng, -2, 2, DType::Float32);
  Tensor g = random_tensor({3}, rng, 0.5, 1.5, DType::Float32), b = random_tensor({3}, rng, -1, 1, DType::Float32);
  Tensor rm = random_tensor({3}, rng, -1, 1, DType::Float32), rv = random_tensor({3}, rng, 0.5, 2, DType::Float32);
  Tensor y = kernels::batch_norm(x.to(device()), g.to(device()), b.to(device()), rm.to(device()), rv.to(device()), false);
  auto xv = x.to_double_vector(), gv = g.to_double_vector(), bv = b.to_double_vector();
  auto mv = rm.to_double_vector(), vv = rv.to_double_vector();
  std::vector<double> want(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) {
    const size_t c = (i / 16) % 3;
    want[i] = (xv[i] - mv[c]) / std::sqrt(vv[c] + 1e-5) * gv[c] + bv[c];
  }
  EXPECT_TRUE(testing::all_close(y, Tensor::from_vector(want, x.shape()), testing::Tolerance{1e-5, 1e-6}));
}

TEST_P(BatchNormTest, MatchesCpuWithGradients) {
  Rng rng(23, 0);
  Tensor x = random_tensor({4, 3, 5, 5}, rng, -2, 2), g = random_tensor({3}, rng, 0.5, 1.5);
  Tensor b = random_tensor({3}, rng), rv = random_tensor({3}, rng, 0.5, 2);
  for (bool training : {true, false}) {
    SCOPED_TRACE(training ? "train" : "eval");
    auto op = [&](const std::vector<Tensor>& in) {
      // Fresh running statistics per run, so both devices start from the same values.
      Tensor rm_run = Tensor::zeros({3}, in[0].dtype(), in[0].device());
      Tensor rv_run = rv.to(in[0].dtype()).to(in[0].device()).clone();
      return kernels::batch_norm(in[0], in[1], in[2], rm_run, rv_run, training);
    };
    EXPECT_TRUE(testing::matches_cpu(device(), op, {x, g, b}, testing::Tolerance{1e-4, 1e-5}));
  }
}

// The fused BN+ReLU against the two ops: bit-identical on the CPU (same arithmetic, the gate of
// relu's backward applied inside BN's), within float32 bounds on CUDA; both memory formats,
// training and eval, gradients of x, γ and β. The input straddles zero so the gate matters.
TEST_P(BatchNormTest, FusedReluEqualsBatchNormThenRelu) {
  Rng rng(24, 0);
  Tensor x = random_tensor({4, 5, 6, 6}, rng, -2, 2), g = random_tensor({5}, rng, -1.5, 1.5);
  Tensor b = random_tensor({5}, rng, -0.5, 0.5), rv = random_tensor({5}, rng, 0.5, 2);
  for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast})
    for (bool training : {true, false}) {
      SCOPED_TRACE(std::string(training ? "train " : "eval ") + memory_format_name(format));
      auto run = [&](bool fused) {
        Tensor xl = kernels::convert(x.to(DType::Float32).to(device()), DType::Float32, format).set_requires_grad(true);
        Tensor gl = g.to(DType::Float32).to(device()).set_requires_grad(true);
        Tensor bl = b.to(DType::Float32).to(device()).set_requires_grad(true);
        Tensor rm = Tensor::zeros({5}, DType::Float32, device());
        Tensor rvl = rv.to(DType::Float32).to(device()).clone();
        Tensor y = fused ? kernels::batch_norm_relu(xl, gl, bl, rm, rvl, training)
                         : kernels::relu(kernels::batch_norm(xl, gl, bl, rm, rvl, training));
        Rng seed_rng(25, 0);
        y.backward(random_tensor(y.shape(), seed_rng, -1, 1, DType::Float32).to(device()));
        return std::vector<Tensor>{y, xl.grad(), gl.grad(), bl.grad(), rm, rvl};
      };
      std::vector<Tensor> fused = run(true), reference = run(false);
      const char* names[] = {"output", "dx", "dgamma", "dbeta", "running_mean", "running_var"};
      // On CUDA both sides are GPU results; only the order of float32 roundings may differ.
      const testing::Tolerance tol = on_cuda() ? testing::Tolerance{1e-5, 1e-6} : testing::Tolerance::exact();
      for (size_t i = 0; i < fused.size(); ++i) EXPECT_TRUE(testing::all_close(fused[i], reference[i], tol, names[i]));
      EXPECT_EQ(fused[1].is_channels_last(), format == MemoryFormat::ChannelsLast);
    }
}

DP_INSTANTIATE_DEVICE_TEST(BatchNormTest);

TEST(BatchNormGrad, TrainingFiniteDifferences) {
  Rng rng(24, 0);
  for (const Shape& shape : {Shape{3, 2, 4, 3}, Shape{5, 3}}) {
    Tensor x = random_tensor(shape, rng, -2, 2), g = random_tensor({shape[1]}, rng, 0.5, 1.5);
    Tensor b = random_tensor({shape[1]}, rng);
    auto op = [&](const std::vector<Tensor>& in) {
      Tensor rm = Tensor::zeros({shape[1]}, DType::Float64), rv = Tensor::ones({shape[1]}, DType::Float64);
      return kernels::batch_norm(in[0], in[1], in[2], rm, rv, true);
    };
    EXPECT_TRUE(testing::gradcheck(op, {x, g, b}));
    // Without running statistics and without affine parameters.
    EXPECT_TRUE(testing::gradcheck(
        [](const std::vector<Tensor>& in) { return kernels::batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
        {x}));
  }
}

TEST(BatchNormGrad, EvalFiniteDifferences) {
  Rng rng(25, 0);
  Tensor x = random_tensor({2, 3, 3, 4}, rng, -2, 2), g = random_tensor({3}, rng, 0.5, 1.5);
  Tensor b = random_tensor({3}, rng), rm = random_tensor({3}, rng), rv = random_tensor({3}, rng, 0.5, 2);
  auto op = [&](const std::vector<Tensor>& in) { return kernels::batch_norm(in[0], in[1], in[2], rm, rv, false); };
  EXPECT_TRUE(testing::gradcheck(op, {x, g, b}));
}

TEST(BatchNormErrors, ChecksInputs) {
  Tensor x = Tensor::zeros({2, 3, 4, 4});
  EXPECT_THROW(kernels::batch_norm(x, Tensor::ones({4}), Tensor::zeros({4}), Tensor(), Tensor(), true), Error);
  EXPECT_THROW(kernels::batch_norm(x, Tensor::ones({3}), Tensor::zeros({3}), Tensor(), Tensor(), false), Error);
  EXPECT_THROW(kernels::batch_norm(Tensor::zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true), Error);
  Tensor rm = Tensor::zeros({3});
  rm.set_requires_grad(true);
  EXPECT_THROW(kernels::batch_norm(x, Tensor(), Tensor(), rm, Tensor::ones({3}), true), Error);
}

}  // namespace
}  // namespace dp
