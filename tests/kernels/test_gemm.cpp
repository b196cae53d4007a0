// matmul and linear: naive reference, finite differences, device comparison, input checks.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace dp
