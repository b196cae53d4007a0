// The dropout family (kernels/dropout.h): mask statistics, same mask forward and backward,
// determinism, finite differences, every device against the CPU in both memory formats (the
// same mask as NCHW); on CUDA the mask bit-identical to the CPU's, and bf16 activations.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/rng.h"
#include "kernels/ops.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

namespace dp {
namespace {

class DropoutTest : public testing::DeviceTest {};

TEST_P(DropoutTest, MaskStatisticsAndScaling) {
  const int64_t n = 200000;
  for (double p : {0.1, 0.5, 0.8}) {
    Tensor x = Tensor::ones({n}).to(device());
    std::vector<float> y = kernels::dropout(x, p, true, 123, 4).to_float_vector();
    int64_t kept = 0;
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    for (float v : y) {
      if (v != 0.f) {
        ++kept;
        ASSERT_FLOAT_EQ(v, scale);
      }
    }
    // Binomial(n, 1-p): 6 standard deviations.
    const double expect = n * (1 - p), sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(static_cast<double>(kept), expect, 6 * sd) << "p = " << p;
  }
}

TEST_P(DropoutTest, MaskIsTheDocumentedPhiloxFunction) {
  const double p = 0.3;
  Tensor x = Tensor::full({1000}, 2.0).to(device());
  std::vector<float> y = kernels::dropout(x, p, true, 99, 7).to_float_vector();
  for (int64_t i = 0; i < 1000; ++i) {
    const bool keep = static_cast<double>(philox_uniform(99, 7, static_cast<uint64_t>(i))) >= p;
    ASSERT_EQ(y[i] != 0.f, keep) << "element " << i;
  }
}

TEST_P(DropoutTest, BackwardUsesTheForwardMask) {
  Rng rng(51, 0);
  Tensor x = testing::random_tensor({4, 5, 6}, rng, 0.5, 1.5, DType::Float32).to(device());
  x.set_requires_grad(true);
  Tensor y = kernels::dropout(x, 0.4, true, 5, 6);
  kernels::sum(y).backward();
  auto yv = y.to_double_vector(), gv = x.grad().to_double_vector();
  int64_t dropped = 0;
  for (size_t i = 0; i < yv.size(); ++i) {
    if (yv[i] == 0.0) {
      ++dropped;
      EXPECT_EQ(gv[i], 0.0);
    } else {
      EXPECT_NEAR(gv[i], 1.0 / 0.6, 1e-6);
    }
  }
  EXPECT_GT(dropped, 0);
}

TEST_P(DropoutTest, DeterministicPerSeedAndStream) {
  Tensor x = Tensor::ones({4096}).to(device());
  auto a = kernels::dropout(x, 0.5, true, 1, 2).to_float_vector();
  auto b = kernels::dropout(x, 0.5, true, 1, 2).to_float_vector();
  auto c = kernels::dropout(x, 0.5, true, 1, 3).to_float_vector();
  auto d = kernels::dropout(x, 0.5, true, 2, 2).to_float_vector();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
}

TEST_P(DropoutTest, EvalAndZeroProbabilityAreIdentity) {
  Tensor x = Tensor::full({10}, 3.0).to(device());
  EXPECT_TRUE(kernels::dropout(x, 0.5, false, 1, 1).same(x));
  EXPECT_TRUE(kernels::dropout(x, 0.0, true, 1, 1).same(x));
  for (float v : kernels::dropout(x, 1.0, true, 1, 1).to_float_vector()) EXPECT_EQ(v, 0.f);
  EXPECT_THROW(kernels::dropout(x, 1.5, true, 1, 1), Error);
}

TEST_P(DropoutTest, MatchesCpuWithGradients) {
  Rng rng(52, 0);
  EXPECT_TRUE(testing::matches_cpu(device(), [](auto& in) { return kernels::dropout(in[0], 0.3, true, 8, 9); },
                                   {testing::random_tensor({3, 7, 11}, rng)}, testing::Tolerance::fp32()));
}

// A channels-last input gets the same mask as NCHW (the mask follows the logical index).
TEST_P(DropoutTest, ChannelsLast) {
  Rng rng(23, 0);
  EXPECT_TRUE(testing::channels_last_matches_cpu(
      device(), [](const std::vector<Tensor>& in) { return kernels::dropout(in[0], 0.3, true, 99, 4); },
      {testing::random_tensor({5, 67, 7, 7}, rng)}, {}));
}

DP_INSTANTIATE_DEVICE_TEST(DropoutTest);

TEST(DropoutGrad, FiniteDifferences) {
  Rng rng(53, 0);
  EXPECT_TRUE(testing::gradcheck([](auto& in) { return kernels::dropout(in[0], 0.5, true, 3, 4); },
                                 {testing::random_tensor({3, 4, 5}, rng)}));
}

// ---- CUDA only ----

class DropoutCuda : public testing::CudaTestWithRng<2024, 5> {};

TEST_F(DropoutCuda, DropoutMaskIsBitIdenticalToTheCpu) {
  for (double p : {0.0, 0.1, 0.5, 0.9}) {
    SCOPED_TRACE("p=" + std::to_string(p));
    EXPECT_TRUE(testing::matches_cpu(
        Device::cuda(), [p](const std::vector<Tensor>& in) { return kernels::dropout(in[0], p, true, 1234, 99); },
        {rand({3, 1027})}, testing::Tolerance::exact()));
  }
}

class DropoutBf16Cuda : public testing::CudaTestWithRng<2025, 16> {};

TEST_F(DropoutBf16Cuda, DropoutSameMaskAsCpu) {
  EXPECT_TRUE(testing::bf16_matches_cpu(
      [](const std::vector<Tensor>& in) { return kernels::dropout(in[0], 0.3, true, 11, 5); }, {rand({4, 257})},
      {DType::BFloat16}, true, DType::BFloat16));
}

}  // namespace
}  // namespace dp
