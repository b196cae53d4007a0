// max_pool2d, avg_pool2d, global_avg_pool: naive references (with padding), floor-mode
// geometry, finite differences (max-pool ties skipped as kinks), device comparison.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <limits>

#include "kernels/ops.h"
#include "kernels/pooling.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

namespace dp {
namespace {

using testing::random_tensor;

struct PoolCase {
  int64_t n, c, h, w, kernel, stride, pad;
};
const std::vector<PoolCase> kPools = {
    {2, 3, 6, 5, 2, 2, 0},  // floor mode drops the last column
    {1, 2, 7, 7, 3, 2, 1},  // padded
    {2, 2, 5, 6, 3, 1, 1},  // overlapping windows
    {1, 1, 4, 4, 4, 4, 0},  // one window
};

std::vector<double> naive_pool(const std::vector<double>& x, const PoolCase& pc, bool max, int64_t P, int64_t Q) {
  std::vector<double> y;
  for (int64_t plane = 0; plane < pc.n * pc.c; ++plane)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        double best = -std::numeric_limits<double>::infinity(), sum = 0;
        for (int64_t i = 0; i < pc.kernel; ++i)
          for (int64_t j = 0; j < pc.kernel; ++j) {
            int64_t h = p * pc.stride - pc.pad + i, w = q * pc.stride - pc.pad + j;
            if (h < 0 || h >= pc.h || w < 0 || w >= pc.w) continue;  // padding counts as 0 for avg
            double v = x[(plane * pc.h + h) * pc.w + w];
            best = std::max(best, v);
            sum += v;
          }
        y.push_back(max ? best : sum / (pc.kernel * pc.kernel));
      }
  return y;
}

class PoolingTest : public testing::DeviceTest {};

TEST_P(PoolingTest, ForwardMatchesNaiveLoops) {
  Rng rng(31, 0);
  for (const PoolCase& pc : kPools) {
    SCOPED_TRACE(fmt::format("h{} w{} k{} s{} p{}", pc.h, pc.w, pc.kernel, pc.stride, pc.pad));
    Tensor x = random_tensor({pc.n, pc.c, pc.h, pc.w}, rng, -1, 1, DType::Float32);
    const int64_t P = (pc.h + 2 * pc.pad - pc.kernel) / pc.stride + 1, Q = (pc.w + 2 * pc.pad - pc.kernel) / pc.stride + 1;
    Tensor ym = kernels::max_pool2d(x.to(device()), pc.kernel, pc.stride, pc.pad);
    Tensor ya = kernels::avg_pool2d(x.to(device()), pc.kernel, pc.stride, pc.pad);
    ASSERT_EQ(ym.shape(), (Shape{pc.n, pc.c, P, Q}));
    EXPECT_TRUE(testing::all_close(ym, Tensor::from_vector(naive_pool(x.to_double_vector(), pc, true, P, Q), ym.shape()),
                                   testing::Tolerance::exact(), "max"));
    EXPECT_TRUE(testing::all_close(ya, Tensor::from_vector(naive_pool(x.to_double_vector(), pc, false, P, Q), ya.shape()),
                                   testing::Tolerance::fp32(), "avg"));
  }
  Tensor x = random_tensor({2, 3, 4, 5}, rng, -1, 1, DType::Float32);
  Tensor g = kernels::global_avg_pool(x.to(device()));
  auto xv = x.to_double_vector();
  std::vector<double> want(6, 0.0);
  for (size_t i = 0; i < xv.size(); ++i) want[i / 20] += xv[i] / 20;
  EXPECT_TRUE(testing::all_close(g, Tensor::from_vector(want, {2, 3}), testing::Tolerance::fp32(), "global"));
}

TEST_P(PoolingTest, MaxPoolTiesSendTheGradientToTheFirstMaximum) {
  // A constant plane: every window is a tie; the first element of each window gets the gradient.
  Tensor x = Tensor::ones({1, 1, 4, 4}).to(device());
  x.set_requires_grad(true);
  kernels::sum(kernels::max_pool2d(x, 2, 2, 0)).backward();
  std::vector<double> want(16, 0.0);
  for (int i : {0, 2, 8, 10}) want[i] = 1.0;
  EXPECT_TRUE(testing::all_close(x.grad(), Tensor::from_vector(want, {1, 1, 4, 4}), testing::Tolerance::exact()));
}

TEST_P(PoolingTest, MatchesCpuWithGradients) {
  Rng rng(32, 0);
  for (const PoolCase& pc : kPools) {
    Tensor x = random_tensor({pc.n, pc.c, pc.h, pc.w}, rng);
    EXPECT_TRUE(testing::matches_cpu(device(), [&](auto& in) { return kernels::max_pool2d(in[0], pc.kernel, pc.stride, pc.pad); },
                                     {x}, testing::Tolerance::fp32()));
    EXPECT_TRUE(testing::matches_cpu(device(), [&](auto& in) { return kernels::avg_pool2d(in[0], pc.kernel, pc.stride, pc.pad); },
                                     {x}, testing::Tolerance::fp32()));
  }
  EXPECT_TRUE(testing::matches_cpu(device(), [](auto& in) { return kernels::global_avg_pool(in[0]); },
                                   {random_tensor({3, 4, 5, 6}, rng)}, testing::Tolerance::fp32()));
}

DP_INSTANTIATE_DEVICE_TEST(PoolingTest);

TEST(PoolingGrad, FiniteDifferences) {
  Rng rng(33, 0);
  for (const PoolCase& pc : kPools) {
    SCOPED_TRACE(fmt::format("h{} w{} k{} s{} p{}", pc.h, pc.w, pc.kernel, pc.stride, pc.pad));
    Tensor x = random_tensor({pc.n, pc.c, pc.h, pc.w}, rng);
    EXPECT_TRUE(testing::gradcheck([&](auto& in) { return kernels::max_pool2d(in[0], pc.kernel, pc.stride, pc.pad); }, {x}));
    EXPECT_TRUE(testing::gradcheck([&](auto& in) { return kernels::avg_pool2d(in[0], pc.kernel, pc.stride, pc.pad); }, {x}));
  }
  EXPECT_TRUE(testing::gradcheck([](auto& in) { return kernels::global_avg_pool(in[0]); }, {random_tensor({2, 3, 3, 5}, rng)}));
}

TEST(PoolingGrad, MaxPoolNearTiesAreSkippedAsKinks) {
  // Two entries of one window differ by less than the FD step: the checker must skip, not fail.
  std::vector<double> v(16);
  for (int i = 0; i < 16; ++i) v[i] = 0.1 * i;
  v[0] = v[5] - 1e-7;
  Tensor x = Tensor::from_vector(v, {1, 1, 4, 4});
  EXPECT_TRUE(testing::gradcheck([](auto& in) { return kernels::max_pool2d(in[0], 2, 2, 0); }, {x}));
}

TEST(PoolingGeometry, FloorModeAndErrors) {
  kernels::Pool2dGeometry g = kernels::Pool2dGeometry::make({1, 1, 7, 6}, 2, 2, 0);
  EXPECT_EQ(g.p, 3);
  EXPECT_EQ(g.q, 3);
  g = kernels::Pool2dGeometry::make({1, 1, 32, 32}, 3, 2, 1);
  EXPECT_EQ(g.p, 16);
  EXPECT_THROW(kernels::Pool2dGeometry::make({1, 1, 4, 4}, 2, 2, 2), Error);  // pad > kernel/2
  EXPECT_THROW(kernels::Pool2dGeometry::make({1, 1, 2, 2}, 5, 1, 0), Error);
  EXPECT_THROW(kernels::max_pool2d(Tensor::zeros({2, 4, 4}), 2, 2), Error);
}

}  // namespace
}  // namespace dp
