// The batch_norm family (kernels/batch_norm.h): training and eval against a naive reference,
// the running-statistics update, finite differences in both modes, every device against the CPU
// in both memory formats, the fused BN+ReLU; on CUDA the NHWC kernels in float32, float64 and
// bf16 (odd sizes on purpose: C = 3 and 67 leave channel tiles of 32 partly empty, H = W = 7 and
// N = 5 make no dimension a multiple of another), determinism, and the bf16 mode.
#include <gtest/gtest.h>

#include <fmt/format.h>

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

// A channels-last input against NCHW on the CPU, train and eval, with the running statistics.
TEST_P(BatchNormTest, ChannelsLast) {
  Rng rng(22, 0);
  for (int64_t c : {3, 67}) {
    Tensor x = random_tensor({5, c, 7, 7}, rng, -2, 3);
    Tensor gamma = random_tensor({c}, rng, 0.5, 1.5), beta = random_tensor({c}, rng);
    Tensor rm = random_tensor({c}, rng, -0.1, 0.1, DType::Float32), rv = random_tensor({c}, rng, 0.5, 2, DType::Float32);
    for (bool training : {true, false}) {
      SCOPED_TRACE(fmt::format("batch_norm C={} {}", c, training ? "train" : "eval"));
      // Each run gets its own copy of the running statistics: [0] the reference, [1] channels-last.
      std::vector<std::pair<Tensor, Tensor>> stats;
      auto op = [&](const std::vector<Tensor>& in) {
        stats.emplace_back(rm.to(in[0].device()).clone(), rv.to(in[0].device()).clone());
        return kernels::batch_norm(in[0], in[1], in[2], stats.back().first, stats.back().second, training);
      };
      EXPECT_TRUE(testing::channels_last_matches_cpu(device(), op, {x, gamma, beta},
                                                     {.channels_last = {true, false, false}}));
      ASSERT_EQ(stats.size(), 2u);
      const testing::Tolerance tol = on_cuda() ? testing::Tolerance::fp32() : testing::Tolerance::exact();
      EXPECT_TRUE(testing::all_close(stats[1].first, stats[0].first, tol, "running_mean"));
      EXPECT_TRUE(testing::all_close(stats[1].second, stats[0].second, tol, "running_var"));
    }
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

// ---- CUDA only: NHWC kernels in every dtype, determinism, the bf16 mode ----

constexpr DType F32 = DType::Float32, F64 = DType::Float64, BF16 = DType::BFloat16;

class BatchNormCuda : public testing::CudaTestWithRng<2024, 5> {};

TEST_F(BatchNormCuda, BatchNormTrainingForwardBackwardAndRunningStats) {
  const Device cuda = Device::cuda();
  const testing::Tolerance strict = testing::Tolerance::fp32_reordered();
  for (const Shape& shape : {Shape{8, 5, 7, 9}, Shape{64, 12}, Shape{2, 3, 1, 1}}) {
    SCOPED_TRACE(shape_str(shape));
    const int64_t c = shape[1];
    Tensor x = rand(shape, -2.0, 3.0), gamma = rand({c}, 0.5, 1.5), beta = rand({c});
    // Gradients of x, gamma and beta.
    EXPECT_TRUE(testing::matches_cpu(
        cuda,
        [](const std::vector<Tensor>& in) {
          return kernels::batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), true, 0.1, 1e-5);
        },
        {x, gamma, beta}, strict));
    // Running statistics (unbiased variance, PyTorch's momentum), two steps.
    Tensor rm_cpu = rand({c}).to(F32), rv_cpu = rand({c}, 0.5, 2.0).to(F32);
    Tensor rm_gpu = rm_cpu.to(cuda), rv_gpu = rv_cpu.to(cuda);
    Tensor xf = x.to(F32), gf = gamma.to(F32), bf = beta.to(F32);
    for (int step = 0; step < 2; ++step) {
      NoGradGuard no_grad;
      Tensor y_cpu = kernels::batch_norm(xf, gf, bf, rm_cpu, rv_cpu, true, 0.3, 1e-5);
      Tensor y_gpu = kernels::batch_norm(xf.to(cuda), gf.to(cuda), bf.to(cuda), rm_gpu, rv_gpu, true, 0.3, 1e-5);
      EXPECT_TRUE(testing::all_close(y_gpu, y_cpu, strict, "y"));
    }
    EXPECT_TRUE(testing::all_close(rm_gpu, rm_cpu, strict, "running_mean"));
    EXPECT_TRUE(testing::all_close(rv_gpu, rv_cpu, strict, "running_var"));
  }
}

TEST_F(BatchNormCuda, BatchNormEvalForwardAndBackward) {
  Tensor x = rand({6, 4, 5, 5}), gamma = rand({4}, 0.5, 1.5), beta = rand({4});
  Tensor rm = rand({4}).to(F32), rv = rand({4}, 0.5, 2.0).to(F32);
  EXPECT_TRUE(testing::matches_cpu(
      Device::cuda(),
      [&](const std::vector<Tensor>& in) {
        return kernels::batch_norm(in[0], in[1], in[2], rm.to(in[0].device()), rv.to(in[0].device()), false, 0.1,
                                   1e-5);
      },
      {x, gamma, beta}, testing::Tolerance::fp32_reordered()));
}

TEST_F(BatchNormCuda, BatchNormIsDeterministic) {
  const Device cuda = Device::cuda();
  Tensor x = rand({32, 16, 14, 14}).to(F32).to(cuda);
  Tensor g = Tensor::ones({16}, F32, cuda), b = Tensor::zeros({16}, F32, cuda);
  std::vector<float> first = kernels::batch_norm(x, g, b, Tensor(), Tensor(), true).to_float_vector();
  EXPECT_EQ(kernels::batch_norm(x, g, b, Tensor(), Tensor(), true).to_float_vector(), first);
}

// The NHWC kernels of kernels/cuda/batch_norm.cu on a channels-last leaf in float32, float64 and
// bf16 against the CPU's NCHW float32 reference: outputs, the backward rule's gradients (dx
// channels-last) and the leaves' gradients; float32/float64 1e-5 relative (our kernels sum in
// double, in another order than the CPU), bf16 1e-2 (one bf16 rounding of each output).
const std::vector<Shape> kNhwcShapes = {
    {5, 67, 7, 7},    // three channel tiles, the last one 3 wide
    {5, 3, 7, 7},     // one tile, 29 idle lanes
    {8, 32, 4, 4},    // exactly one tile
    {16, 40, 32, 32}  // enough rows for many splits per tile
};

class BatchNormNhwcCuda : public testing::CudaTestWithRng<2026, 11> {};

TEST_F(BatchNormNhwcCuda, BatchNormTrainForwardBackwardAndRunningStats) {
  const Device cuda = Device::cuda();
  for (DType dtype : {F32, F64, BF16}) {
    for (const Shape& shape : kNhwcShapes) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape_str(shape));
      const int64_t c = shape[1];
      const DType stats = dtype == BF16 ? F32 : dtype;
      Tensor rm0 = rand({c}, -0.5, 0.5), rv0 = rand({c}, 0.5, 2.0);
      Tensor rm_cpu = rm0.to(F32), rv_cpu = rv0.to(F32);
      Tensor rm_gpu = rm0.to(stats).to(cuda), rv_gpu = rv0.to(stats).to(cuda);
      auto op = [&](const std::vector<Tensor>& in) {
        const bool on_gpu = in[0].device().is_cuda();
        return kernels::batch_norm(in[0], in[1], in[2], on_gpu ? rm_gpu : rm_cpu, on_gpu ? rv_gpu : rv_cpu, true, 0.3,
                                   1e-5);
      };
      EXPECT_TRUE(testing::channels_last_matches_cpu(cuda, op, {rand(shape, -2.0, 3.0), rand({c}, 0.5, 1.5), rand({c})},
                                                     testing::ChannelsLastCase::nhwc_kernels(dtype)));
      // Running statistics: one update from each side (float32 on the CPU).
      EXPECT_TRUE(testing::all_close(rm_gpu, rm_cpu, testing::Tolerance::fp32_reordered(), "running_mean"));
      EXPECT_TRUE(testing::all_close(rv_gpu, rv_cpu, testing::Tolerance::fp32_reordered(), "running_var"));
    }
  }
}

TEST_F(BatchNormNhwcCuda, BatchNormEvalForwardAndBackward) {
  const Device cuda = Device::cuda();
  for (DType dtype : {F32, BF16}) {
    for (const Shape& shape : {Shape{5, 67, 7, 7}, Shape{5, 3, 7, 7}}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape_str(shape));
      const int64_t c = shape[1];
      const DType stats = dtype == BF16 ? F32 : dtype;
      Tensor rm = rand({c}, -0.5, 0.5), rv = rand({c}, 0.5, 2.0);
      auto op = [&](const std::vector<Tensor>& in) {
        const DType sd = in[0].device().is_cuda() ? stats : F32;
        return kernels::batch_norm(in[0], in[1], in[2], rm.to(sd).to(in[0].device()), rv.to(sd).to(in[0].device()),
                                   false, 0.1, 1e-5);
      };
      EXPECT_TRUE(testing::channels_last_matches_cpu(cuda, op, {rand(shape, -2.0, 3.0), rand({c}, 0.5, 1.5), rand({c})},
                                                     testing::ChannelsLastCase::nhwc_kernels(dtype)));
    }
  }
}

TEST_F(BatchNormNhwcCuda, BatchNormIsDeterministic) {
  const Device cuda = Device::cuda();
  Tensor x = kernels::convert(rand({32, 48, 14, 14}).to(F32).to(cuda), F32, MemoryFormat::ChannelsLast);
  x.set_requires_grad(true);
  Tensor g = Tensor::ones({48}, F32, cuda), b = Tensor::zeros({48}, F32, cuda);
  Tensor seed = kernels::convert(rand({32, 48, 14, 14}).to(F32).to(cuda), F32, MemoryFormat::ChannelsLast);
  std::vector<float> y0, dx0;
  for (int rep = 0; rep < 2; ++rep) {
    x.zero_grad();
    Tensor y = kernels::batch_norm(x, g, b, Tensor(), Tensor(), true);
    y.backward(seed);
    if (rep == 0) {
      y0 = y.to_float_vector();
      dx0 = x.grad().to_float_vector();
    } else {
      EXPECT_EQ(y.to_float_vector(), y0);
      EXPECT_EQ(x.grad().to_float_vector(), dx0);
    }
  }
}

// The NCHW kernels next to the NHWC ones on the same device: same values.
TEST_F(BatchNormNhwcCuda, AgreesWithNchwOnTheDevice) {
  const Device cuda = Device::cuda();
  Tensor x = rand({5, 67, 7, 7}, -2.0, 3.0).to(F32).to(cuda);
  Tensor x_cl = kernels::convert(x, F32, MemoryFormat::ChannelsLast);
  Tensor g = rand({67}, 0.5, 1.5).to(F32).to(cuda), b = rand({67}).to(F32).to(cuda);
  NoGradGuard no_grad;
  EXPECT_TRUE(testing::all_close(kernels::batch_norm(x_cl, g, b, Tensor(), Tensor(), true),
                                 kernels::batch_norm(x, g, b, Tensor(), Tensor(), true),
                                 testing::Tolerance::fp32_reordered(), "batch_norm"));
}

// The bf16 mode: bf16 activations, float32 parameters and statistics.
class BatchNormBf16Cuda : public testing::CudaTestWithRng<2025, 16> {};

TEST_F(BatchNormBf16Cuda, BatchNormTrainKeepsFloat32StatisticsAndParameters) {
  const Device cuda = Device::cuda();
  for (Shape s : {Shape{4, 8, 6, 6}, Shape{16, 12}}) {
    SCOPED_TRACE(shape_str(s));
    const int64_t c = s[1];
    Tensor rm_cpu = rand({c}, -0.5, 0.5), rv_cpu = rand({c}, 0.5, 1.5);
    Tensor rm_cuda = rm_cpu.to(F32).to(cuda), rv_cuda = rv_cpu.to(F32).to(cuda);
    Tensor rm_ref = rm_cpu.to(F32), rv_ref = rv_cpu.to(F32);
    auto op = [&](const std::vector<Tensor>& in) {
      const bool on_gpu = in[0].device().is_cuda();
      return kernels::batch_norm(in[0], in[1], in[2], on_gpu ? rm_cuda : rm_ref, on_gpu ? rv_cuda : rv_ref, true, 0.1,
                                 1e-5);
    };
    EXPECT_TRUE(testing::bf16_matches_cpu(op, {rand(s, -2.0, 3.0), rand({c}, 0.5, 1.5), rand({c})}, {BF16, F32, F32},
                                          true, BF16));
    EXPECT_EQ(rm_cuda.dtype(), F32);
    EXPECT_TRUE(testing::all_close(rm_cuda, rm_ref, testing::Tolerance::fp32_reordered(), "running_mean"));
    EXPECT_TRUE(testing::all_close(rv_cuda, rv_ref, testing::Tolerance::fp32_reordered(), "running_var"));
  }
}

TEST_F(BatchNormBf16Cuda, BatchNormEval) {
  Tensor rm = rand({6}, -0.5, 0.5).to(F32), rv = rand({6}, 0.5, 1.5).to(F32);
  auto op = [&](const std::vector<Tensor>& in) {
    return kernels::batch_norm(in[0], in[1], in[2], rm.to(in[0].device()), rv.to(in[0].device()), false);
  };
  EXPECT_TRUE(testing::bf16_matches_cpu(op, {rand({3, 6, 5, 5}), rand({6}, 0.5, 1.5), rand({6})}, {BF16, F32, F32},
                                        true, BF16));
}

}  // namespace
}  // namespace dp
