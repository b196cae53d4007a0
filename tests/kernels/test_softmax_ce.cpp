// The softmax_ce family (kernels/softmax_ce.h): cross_entropy against a naive reference,
// numerical stability, finite differences, every device against the CPU, label checks; on CUDA
// many shapes, the out-of-range label, and bf16 input computed in float32.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/ops.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

namespace dp {
namespace {

using testing::random_tensor;

double naive_ce(const std::vector<double>& z, const std::vector<int64_t>& y, int64_t B, int64_t C) {
  double total = 0;
  for (int64_t i = 0; i < B; ++i) {
    double s = 0;
    for (int64_t j = 0; j < C; ++j) s += std::exp(z[i * C + j]);
    total += std::log(s) - z[i * C + y[i]];
  }
  return total / B;
}

class CrossEntropyTest : public testing::DeviceTest {};

TEST_P(CrossEntropyTest, MatchesNaiveLoop) {
  Rng rng(41, 0);
  for (int64_t C : {2, 5, 10}) {
    const int64_t B = 7;
    Tensor z = random_tensor({B, C}, rng, -3, 3, DType::Float32);
    std::vector<int64_t> y;
    for (int64_t i = 0; i < B; ++i) y.push_back(static_cast<int64_t>(rng.below(C)));
    Tensor loss = kernels::cross_entropy(z.to(device()), Tensor::from_vector(y, {B}).to(device()));
    EXPECT_EQ(loss.numel(), 1);
    EXPECT_NEAR(loss.item(), naive_ce(z.to_double_vector(), y, B, C), 1e-5);
  }
}

TEST_P(CrossEntropyTest, LargeLogitsAreStable) {
  Tensor z = Tensor::from_vector(std::vector<float>{1000.f, 0.f, -1000.f, 0.f, 1e4f, 0.f}, {2, 3}).to(device());
  z.set_requires_grad(true);
  Tensor loss = kernels::cross_entropy(z, Tensor::from_vector(std::vector<int64_t>{0, 2}, {2}).to(device()));
  EXPECT_NEAR(loss.item(), (0.0 + 1e4) / 2, 1e-2);
  loss.backward();
  for (double g : z.grad().to_double_vector()) EXPECT_TRUE(std::isfinite(g));
}

TEST_P(CrossEntropyTest, MatchesCpuWithGradients) {
  Rng rng(42, 0);
  Tensor z = random_tensor({16, 10}, rng, -4, 4);
  std::vector<int64_t> y;
  for (int i = 0; i < 16; ++i) y.push_back(i % 10);
  Tensor labels = Tensor::from_vector(y, {16});
  EXPECT_TRUE(testing::matches_cpu(device(), [](auto& in) { return kernels::cross_entropy(in[0], in[1]); },
                                   {z, labels}, testing::Tolerance::fp32()));
}

DP_INSTANTIATE_DEVICE_TEST(CrossEntropyTest);

TEST(CrossEntropyGrad, FiniteDifferences) {
  Rng rng(43, 0);
  for (int64_t C : {2, 4, 9}) {
    Tensor z = random_tensor({5, C}, rng, -2, 2);
    std::vector<int64_t> y;
    for (int i = 0; i < 5; ++i) y.push_back(static_cast<int64_t>(rng.below(C)));
    EXPECT_TRUE(testing::gradcheck([](auto& in) { return kernels::cross_entropy(in[0], in[1]); },
                                   {z, Tensor::from_vector(y, {5})}));
  }
}

TEST(CrossEntropyGrad, UpstreamGradientScales) {
  // loss·3 through mul: dlogits scale by 3.
  Tensor z = Tensor::from_vector(std::vector<double>{0.1, 0.7, -0.2, 0.4}, {2, 2});
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{1, 0}, {2});
  Tensor z1 = z.clone().set_requires_grad(true), z3 = z.clone().set_requires_grad(true);
  kernels::cross_entropy(z1, labels).backward();
  kernels::mul(kernels::cross_entropy(z3, labels), 3.0).backward();
  auto g1 = z1.grad().to_double_vector(), g3 = z3.grad().to_double_vector();
  for (size_t i = 0; i < g1.size(); ++i) EXPECT_NEAR(g3[i], 3 * g1[i], 1e-15);
}

TEST(CrossEntropyErrors, LabelOutOfRangeNamesTheRow) {
  Tensor z = Tensor::zeros({3, 4});
  try {
    kernels::cross_entropy(z, Tensor::from_vector(std::vector<int64_t>{0, 4, 1}, {3}));
    FAIL() << "expected dp::Error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("row 1"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("num_classes"), std::string::npos) << e.what();
  }
  EXPECT_THROW(kernels::cross_entropy(z, Tensor::from_vector(std::vector<int64_t>{0, -1, 1}, {3})), Error);
  EXPECT_THROW(kernels::cross_entropy(z, Tensor::zeros({3}, DType::Int32)), Error);
  EXPECT_THROW(kernels::cross_entropy(z, Tensor::zeros({2}, DType::Int64)), Error);
}

// ---- CUDA only ----

class CrossEntropyCuda : public testing::CudaTestWithRng<2024, 5> {};

TEST_F(CrossEntropyCuda, CrossEntropyForwardAndBackward) {
  for (auto [b, c] : {std::pair<int64_t, int64_t>{33, 10}, {17, 1000}, {1, 2}, {300, 100}}) {
    SCOPED_TRACE(std::to_string(b) + "x" + std::to_string(c));
    std::vector<int64_t> labels(static_cast<size_t>(b));
    for (auto& l : labels) l = static_cast<int64_t>(rng_.below(static_cast<uint64_t>(c)));
    Tensor y = Tensor::from_vector(labels, {b});
    EXPECT_TRUE(testing::matches_cpu(
        Device::cuda(),
        [&](const std::vector<Tensor>& in) { return kernels::cross_entropy(in[0], y.to(in[0].device())); },
        {rand({b, c}, -8.0, 8.0)}, testing::Tolerance::fp32_reordered()));
  }
}

TEST_F(CrossEntropyCuda, CrossEntropyOutOfRangeLabelGivesNanOnCuda) {
  Tensor z = Tensor::zeros({2, 3}, DType::Float32, Device::cuda());
  Tensor y = Tensor::from_vector(std::vector<int64_t>{0, 7}, {2}, Device::cuda());
  EXPECT_TRUE(std::isnan(kernels::cross_entropy(z, y).item()));
}

class CrossEntropyBf16Cuda : public testing::CudaTestWithRng<2025, 16> {};

TEST_F(CrossEntropyBf16Cuda, CrossEntropyComputesInFloat32) {
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 3, 9, 2, 5, 5}, {6});
  auto op = [&](const std::vector<Tensor>& in) { return kernels::cross_entropy(in[0], labels.to(in[0].device())); };
  EXPECT_TRUE(testing::bf16_matches_cpu(op, {rand({6, 10}, -3.0, 3.0)}, {DType::BFloat16}, true, DType::Float32));
}

}  // namespace
}  // namespace dp
