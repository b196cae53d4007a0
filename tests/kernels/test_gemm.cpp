// The gemm family (kernels/gemm.h): matmul and linear against a naive reference, finite
// differences, every device against the CPU, input checks; on CUDA every transpose in strict
// float32 and TF32, float64, and bf16 under autocast.
#include <gtest/gtest.h>

#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

namespace dp {
namespace {

using testing::random_tensor;

std::vector<double> naive_matmul(const std::vector<double>& a, const std::vector<double>& b, int64_t m,
                                 int64_t k, int64_t n) {
  std::vector<double> c(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t t = 0; t < k; ++t) c[i * n + j] += a[i * k + t] * b[t * n + j];
  return c;
}

class GemmTest : public testing::DeviceTest {};

TEST_P(GemmTest, MatmulMatchesNaiveLoop) {
  Rng rng(1, 0);
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor a = random_tensor({5, 7}, rng, -1, 1, dt), b = random_tensor({7, 3}, rng, -1, 1, dt);
    Tensor c = kernels::matmul(a.to(device()), b.to(device()));
    ASSERT_EQ(c.shape(), (Shape{5, 3}));
    auto want = naive_matmul(a.to_double_vector(), b.to_double_vector(), 5, 7, 3);
    // float32 on CUDA runs in TF32 by default (kernels/gemm.h).
    EXPECT_TRUE(testing::all_close(c, Tensor::from_vector(want, {5, 3}),
                                   dt == DType::Float64 ? testing::Tolerance{1e-12, 1e-14}
                                   : on_cuda()          ? testing::Tolerance::tf32()
                                                        : testing::Tolerance{1e-5, 1e-6}));
  }
}

TEST_P(GemmTest, LargeMatmulSplitsRowsConsistently) {
  Rng rng(2, 0);
  Tensor a = random_tensor({300, 200}, rng, -1, 1, DType::Float32);
  Tensor b = random_tensor({200, 150}, rng, -1, 1, DType::Float32);
  Tensor c = kernels::matmul(a.to(device()), b.to(device()));
  auto want = naive_matmul(a.to_double_vector(), b.to_double_vector(), 300, 200, 150);
  EXPECT_TRUE(testing::all_close(c, Tensor::from_vector(want, {300, 150}),
                                 on_cuda() ? testing::Tolerance::tf32() : testing::Tolerance{1e-4, 1e-5}));
}

TEST_P(GemmTest, LinearMatchesNaiveLoop) {
  Rng rng(3, 0);
  Tensor x = random_tensor({4, 6}, rng), w = random_tensor({3, 6}, rng), b = random_tensor({3}, rng);
  for (bool with_bias : {true, false}) {
    Tensor y = kernels::linear(x.to(device()), w.to(device()), with_bias ? b.to(device()) : Tensor());
    auto xv = x.to_double_vector(), wv = w.to_double_vector(), bv = b.to_double_vector();
    std::vector<double> want(12);
    for (int n = 0; n < 4; ++n)
      for (int o = 0; o < 3; ++o) {
        double acc = with_bias ? bv[o] : 0.0;
        for (int i = 0; i < 6; ++i) acc += xv[n * 6 + i] * wv[o * 6 + i];
        want[n * 3 + o] = acc;
      }
    EXPECT_TRUE(testing::all_close(y, Tensor::from_vector(want, {4, 3}), testing::Tolerance{1e-10, 1e-12}));
  }
}

TEST_P(GemmTest, MatchesCpuWithGradients) {
  Rng rng(4, 0);
  Tensor a = random_tensor({9, 5}, rng), b = random_tensor({5, 4}, rng);
  EXPECT_TRUE(testing::matches_cpu(device(), [](auto& in) { return kernels::matmul(in[0], in[1]); }, {a, b},
                                   testing::Tolerance::tf32()));
  Tensor x = random_tensor({6, 5}, rng), w = random_tensor({3, 5}, rng), bias = random_tensor({3}, rng);
  EXPECT_TRUE(testing::matches_cpu(device(), [](auto& in) { return kernels::linear(in[0], in[1], in[2]); },
                                   {x, w, bias}, testing::Tolerance::tf32()));
}

DP_INSTANTIATE_DEVICE_TEST(GemmTest);

TEST(GemmGrad, MatmulFiniteDifferences) {
  Rng rng(5, 0);
  EXPECT_TRUE(testing::gradcheck([](auto& in) { return kernels::matmul(in[0], in[1]); },
                                 {random_tensor({4, 3}, rng), random_tensor({3, 5}, rng)}));
}

TEST(GemmGrad, LinearFiniteDifferencesWithAndWithoutBias) {
  Rng rng(6, 0);
  Tensor x = random_tensor({5, 4}, rng), w = random_tensor({3, 4}, rng), b = random_tensor({3}, rng);
  EXPECT_TRUE(testing::gradcheck([](auto& in) { return kernels::linear(in[0], in[1], in[2]); }, {x, w, b}));
  EXPECT_TRUE(testing::gradcheck([](auto& in) { return kernels::linear(in[0], in[1], Tensor()); }, {x, w}));
}

TEST(GemmErrors, ShapeAndDtypeMismatchesCarryHints) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  try {
    kernels::matmul(a, b);
    FAIL() << "expected dp::Error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("inner dimensions"), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_THROW(kernels::matmul(a, Tensor::zeros({3, 2}, DType::Float64)), Error);
  EXPECT_THROW(kernels::linear(a, Tensor::zeros({4, 2}), Tensor()), Error);
  EXPECT_THROW(kernels::linear(a, Tensor::zeros({4, 3}), Tensor::zeros({5})), Error);
  EXPECT_THROW(kernels::matmul(Tensor::zeros({2, 3}, DType::Int64), Tensor::zeros({3, 2}, DType::Int64)), Error);
}

// ---- CUDA only: math modes, float64, bf16 ----

class GemmCuda : public testing::CudaTestWithRng<2024, 5> {};

#ifdef DP_WITH_CUDA
TEST_F(GemmCuda, GemmAllTransposesBothMathModes) {
  const Device cuda = Device::cuda();
  Tensor a = rand({37, 53}), b = rand({53, 29}), c0 = rand({37, 29});
  testing::for_each_math_mode([&](testing::Tolerance tol) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        SCOPED_TRACE(std::string("trans_a=") + (ta ? "1" : "0") + " trans_b=" + (tb ? "1" : "0"));
        // Lay out A and B so that op(A) = a and op(B) = b.
        Tensor A = a.to(DType::Float32), B = b.to(DType::Float32);
        if (ta) {
          std::vector<float> t(37 * 53), v = a.to_float_vector();
          for (int i = 0; i < 37; ++i)
            for (int k = 0; k < 53; ++k) t[k * 37 + i] = v[i * 53 + k];
          A = Tensor::from_vector(t, {53, 37});
        }
        if (tb) {
          std::vector<float> t(53 * 29), v = b.to_float_vector();
          for (int k = 0; k < 53; ++k)
            for (int j = 0; j < 29; ++j) t[j * 53 + k] = v[k * 29 + j];
          B = Tensor::from_vector(t, {29, 53});
        }
        Tensor c_cpu = c0.to(DType::Float32), c_gpu = c_cpu.to(cuda);
        kernels::cpu::gemm(ta, tb, 0.75, A, B, -0.5, c_cpu);
        Tensor Ag = A.to(cuda), Bg = B.to(cuda);
        kernels::cuda::gemm(ta, tb, 0.75, Ag, Bg, -0.5, c_gpu);
        EXPECT_TRUE(testing::all_close(c_gpu, c_cpu, tol, "gemm"));
      }
  });
}

TEST_F(GemmCuda, MatmulAndLinearWithGradients) {
  const Device cuda = Device::cuda();
  testing::for_each_math_mode([&](testing::Tolerance tol) {
    EXPECT_TRUE(testing::matches_cpu(cuda, [](const std::vector<Tensor>& in) { return kernels::matmul(in[0], in[1]); },
                                     {rand({64, 96}), rand({96, 33})}, tol));
    EXPECT_TRUE(testing::matches_cpu(
        cuda, [](const std::vector<Tensor>& in) { return kernels::linear(in[0], in[1], in[2]); },
        {rand({128, 640}), rand({10, 640}), rand({10})}, tol));
    EXPECT_TRUE(testing::matches_cpu(
        cuda, [](const std::vector<Tensor>& in) { return kernels::linear(in[0], in[1], Tensor()); },
        {rand({5, 7}), rand({300, 7})}, tol));
  });
}
#endif

TEST_F(GemmCuda, Float64GemmIsSupported) {
  Tensor a = rand({20, 30}), b = rand({30, 10});
  Tensor got = kernels::matmul(a.to(Device::cuda()), b.to(Device::cuda()));
  EXPECT_TRUE(testing::all_close(got, kernels::matmul(a, b), testing::Tolerance{1e-12, 1e-13}, "float64 matmul"));
}

class GemmBf16Cuda : public testing::CudaTestWithRng<2025, 16> {};

// Under autocast: float32 parameters and inputs in, bf16 out, float32 gradients back.
TEST_F(GemmBf16Cuda, LinearAndMatmulUnderAutocast) {
  constexpr DType F32 = DType::Float32, BF16 = DType::BFloat16;
  const testing::OpFn linear = [](const std::vector<Tensor>& in) { return kernels::linear(in[0], in[1], in[2]); };
  EXPECT_TRUE(testing::bf16_matches_cpu(linear, {rand({16, 96}), rand({10, 96}, -0.2, 0.2), rand({10})},
                                        {F32, F32, F32}, true, BF16));
  EXPECT_TRUE(testing::bf16_matches_cpu(linear, {rand({7, 33}), rand({5, 33}), rand({5})}, {BF16, F32, F32}, true,
                                        BF16));
  EXPECT_TRUE(testing::bf16_matches_cpu([](const std::vector<Tensor>& in) { return kernels::matmul(in[0], in[1]); },
                                        {rand({9, 40}), rand({40, 17})}, {F32, F32}, true, BF16));
}

}  // namespace
}  // namespace dp
