// The pooling family (kernels/pooling.h): max_pool2d, avg_pool2d, global_avg_pool against naive
// references (with padding), floor-mode geometry, finite differences (max-pool ties skipped as
// kinks), every device against the CPU in both memory formats; on CUDA the NHWC kernels in
// float32, float64 and bf16, ties, and the bf16 mode.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
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

// Channels-last inputs against NCHW on the CPU.
TEST_P(PoolingTest, ChannelsLast) {
  Rng rng(23, 0);
  Tensor x = random_tensor({5, 67, 7, 7}, rng);
  struct Case {
    const char* name;
    testing::OpFn op;
  };
  for (const Case& c :
       {Case{"max_pool 3x3 s2 p1", [](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 3, 2, 1); }},
        Case{"max_pool 2x2 s2", [](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 2, 2, 0); }},
        Case{"avg_pool 3x3 s2 p1", [](const std::vector<Tensor>& in) { return kernels::avg_pool2d(in[0], 3, 2, 1); }},
        Case{"global_avg_pool", [](const std::vector<Tensor>& in) { return kernels::global_avg_pool(in[0]); }}}) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(testing::channels_last_matches_cpu(device(), c.op, {x}, {}));
  }
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

// ---- CUDA only: ties, NHWC kernels in every dtype, the bf16 mode ----

constexpr DType F32 = DType::Float32, F64 = DType::Float64, BF16 = DType::BFloat16;

class PoolingCuda : public testing::CudaTestWithRng<2024, 5> {};

TEST_F(PoolingCuda, PoolingForwardAndBackward) {
  const Device cuda = Device::cuda();
  const testing::Tolerance strict = testing::Tolerance::fp32_reordered();
  Tensor x = rand({3, 4, 11, 10});
  EXPECT_TRUE(testing::matches_cpu(cuda, [](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 3, 2, 1); },
                                   {x}, strict));
  EXPECT_TRUE(testing::matches_cpu(cuda, [](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 2, 2, 0); },
                                   {x}, strict));
  EXPECT_TRUE(testing::matches_cpu(cuda, [](const std::vector<Tensor>& in) { return kernels::avg_pool2d(in[0], 3, 2, 1); },
                                   {x}, strict));
  EXPECT_TRUE(testing::matches_cpu(cuda, [](const std::vector<Tensor>& in) { return kernels::avg_pool2d(in[0], 2, 1, 0); },
                                   {x}, strict));
  EXPECT_TRUE(testing::matches_cpu(cuda, [](const std::vector<Tensor>& in) { return kernels::global_avg_pool(in[0]); },
                                   {rand({5, 7, 8, 8})}, strict));
}

TEST_F(PoolingCuda, MaxPoolTiesPickTheFirstMaximumLikeTheCpu) {
  Tensor x = Tensor::full({1, 2, 6, 6}, 1.0);  // every window is one big tie
  EXPECT_TRUE(testing::matches_cpu(Device::cuda(),
                                   [](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 3, 2, 1); },
                                   {x}, testing::Tolerance::exact()));
}

// The NHWC kernels of kernels/cuda/pooling.cu on a channels-last leaf in float32, float64 and
// bf16 against the CPU's NCHW float32 reference (see BatchNormNhwcCuda in test_batch_norm.cpp).
class PoolingNhwcCuda : public testing::CudaTestWithRng<2026, 11> {};

TEST_F(PoolingNhwcCuda, MaxAndAvgPoolForwardAndBackward) {
  struct Case {
    const char* name;
    int64_t k, s, pad;
    bool max;
  };
  const Case cases[] = {{"max 3x3 s2 p1", 3, 2, 1, true},
                        {"max 2x2 s2", 2, 2, 0, true},
                        {"avg 3x3 s2 p1", 3, 2, 1, false},
                        {"avg 2x2 s1", 2, 1, 0, false}};
  for (DType dtype : {F32, F64, BF16}) {
    for (const Shape& shape : {Shape{5, 67, 7, 7}, Shape{3, 3, 11, 10}, Shape{2, 40, 2, 2}}) {
      for (const Case& cs : cases) {
        SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape_str(shape) + " " + cs.name);
        auto op = [cs](const std::vector<Tensor>& in) {
          return cs.max ? kernels::max_pool2d(in[0], cs.k, cs.s, cs.pad)
                        : kernels::avg_pool2d(in[0], cs.k, cs.s, cs.pad);
        };
        // [2, 40, 2, 2] with 2x2 s2 gives a [2, 40, 1, 1] output: Contiguous, same bytes.
        EXPECT_TRUE(testing::channels_last_matches_cpu(Device::cuda(), op, {rand(shape)}, testing::ChannelsLastCase::nhwc_kernels(dtype)));
      }
    }
  }
}

TEST_F(PoolingNhwcCuda, MaxPoolTiesPickTheFirstMaximumLikeTheCpu) {
  Tensor x = Tensor::full({2, 5, 6, 6}, 1.0);  // every window is one big tie
  EXPECT_TRUE(testing::channels_last_matches_cpu(
      Device::cuda(), [](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 3, 2, 1); }, {x},
      testing::ChannelsLastCase::nhwc_kernels(F32)));
}

TEST_F(PoolingNhwcCuda, GlobalAvgPoolForwardAndBackward) {
  for (DType dtype : {F32, F64, BF16}) {
    for (const Shape& shape : {Shape{5, 67, 7, 7}, Shape{3, 3, 11, 10}, Shape{4, 512, 4, 4}}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape_str(shape));
      // y is [N, C] (no format); dx comes back channels-last.
      EXPECT_TRUE(testing::channels_last_matches_cpu(
          Device::cuda(), [](const std::vector<Tensor>& in) { return kernels::global_avg_pool(in[0]); }, {rand(shape)},
          testing::ChannelsLastCase::nhwc_kernels(dtype)));
    }
  }
}

// The NCHW kernels next to the NHWC ones on the same device: same values.
TEST_F(PoolingNhwcCuda, AgreesWithNchwOnTheDevice) {
  Tensor x = rand({5, 67, 7, 7}, -2.0, 3.0).to(F32).to(Device::cuda());
  Tensor x_cl = kernels::convert(x, F32, MemoryFormat::ChannelsLast);
  NoGradGuard no_grad;
  EXPECT_TRUE(testing::all_close(kernels::max_pool2d(x_cl, 3, 2, 1), kernels::max_pool2d(x, 3, 2, 1),
                                 testing::Tolerance::exact(), "max_pool2d"));
  EXPECT_TRUE(testing::all_close(kernels::avg_pool2d(x_cl, 3, 2, 1), kernels::avg_pool2d(x, 3, 2, 1),
                                 testing::Tolerance::fp32_reordered(), "avg_pool2d"));
  EXPECT_TRUE(testing::all_close(kernels::global_avg_pool(x_cl), kernels::global_avg_pool(x),
                                 testing::Tolerance::fp32_reordered(), "global_avg_pool"));
}

class PoolingBf16Cuda : public testing::CudaTestWithRng<2025, 16> {};

TEST_F(PoolingBf16Cuda, Pooling) {
  Tensor x = rand({2, 5, 9, 9});
  EXPECT_TRUE(testing::bf16_matches_cpu(
      [](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 3, 2, 1); }, {x}, {BF16}, true, BF16));
  EXPECT_TRUE(testing::bf16_matches_cpu(
      [](const std::vector<Tensor>& in) { return kernels::avg_pool2d(in[0], 3, 2, 1); }, {x}, {BF16}, true, BF16));
  EXPECT_TRUE(testing::bf16_matches_cpu([](const std::vector<Tensor>& in) { return kernels::global_avg_pool(in[0]); },
                                        {rand({4, 6, 8, 8})}, {BF16}, true, BF16));
}

// Ties and NaNs in ResNet's 3×3 / stride 2 / pad 1 pool (its whole windows take the unrolled
// path, the border windows the generic scan): the first maximum in scan order wins, a
// NaN beats every number (it propagates, as PyTorch's max pool does) and the first NaN of a
// window takes its gradient.
TEST(MaxPoolCpu, TiesAndNaNsPickTheFirstInScanOrder) {
  const int64_t H = 9, W = 9, P = 5, Q = 5;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> xv(H * W);
  for (int64_t i = 0; i < H * W; ++i) xv[i] = static_cast<float>((i * 7) % 3);  // ties everywhere
  for (int64_t i : {20, 22, 40, 41, 60}) xv[i] = nan;
  std::vector<float> want_y;
  std::vector<double> want_grad(H * W, 0.0);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t q = 0; q < Q; ++q) {
      float best = -std::numeric_limits<float>::infinity();
      int64_t where = -1;
      for (int64_t h = 2 * p - 1; h <= 2 * p + 1; ++h)
        for (int64_t w = 2 * q - 1; w <= 2 * q + 1; ++w) {
          if (h < 0 || h >= H || w < 0 || w >= W) continue;
          const float v = xv[h * W + w];
          if (where < 0 || v > best || (std::isnan(v) && !std::isnan(best))) best = v, where = h * W + w;
        }
      want_y.push_back(best);
      want_grad[where] += 1.0;
    }
  Tensor x = Tensor::from_vector(xv, {1, 1, H, W});
  x.set_requires_grad(true);
  Tensor y = kernels::max_pool2d(x, 3, 2, 1);
  const std::vector<double> got = y.to_double_vector();
  ASSERT_EQ(got.size(), want_y.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want_y[i])) EXPECT_TRUE(std::isnan(got[i])) << "output " << i << " should be NaN";
    else EXPECT_EQ(got[i], want_y[i]) << "output " << i;
  }
  kernels::sum(y).backward();
  EXPECT_TRUE(testing::all_close(x.grad(), Tensor::from_vector(want_grad, {1, 1, H, W}), testing::Tolerance::exact()));
}

// The float 3×3 / stride 2 pool runs a vectorised path (16 outputs of a row at once; planes with
// a NaN or an infinity go to the generic scan); float64 always runs the generic scan. On the same
// values (ties; with and without NaNs and infinities) both give the same maxima and the same
// argmax, for maps narrower than, equal to and wider than a vector, 1×1 maps and both pads.
TEST(MaxPoolCpu, VectorisedStemPoolMatchesTheGenericScan) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  struct Case { int64_t h, w, pad; };
  for (bool specials : {false, true})
  for (Case cc : {Case{1, 1, 1}, Case{2, 3, 1}, Case{3, 3, 0}, Case{9, 9, 1}, Case{7, 33, 1}, Case{6, 64, 0},
                  Case{13, 65, 1}, Case{40, 112, 1}}) {
    SCOPED_TRACE(fmt::format("h{} w{} pad{} NaNs and infinities {}", cc.h, cc.w, cc.pad, specials));
    const Shape shape{2, 3, cc.h, cc.w};
    std::vector<float> xv(static_cast<size_t>(2 * 3 * cc.h * cc.w));
    for (size_t i = 0; i < xv.size(); ++i) {
      const size_t r = (i * 2654435761u) % 97;
      xv[i] = static_cast<float>(r % 4) - 1.5f;  // ties everywhere
      if (specials && r < 8) xv[i] = r < 3 ? nan : r < 6 ? -inf : inf;
    }
    const kernels::Pool2dGeometry g = kernels::Pool2dGeometry::make(shape, 3, 2, cc.pad);
    const Shape out{2, 3, g.p, g.q};
    Tensor xf = Tensor::from_vector(xv, shape), xd = Tensor::from_vector(xf.to_double_vector(), shape);
    Tensor yf = Tensor::empty(out), yd = Tensor::empty(out, DType::Float64);
    Tensor af = Tensor::empty(out, DType::Int32), ad = Tensor::empty(out, DType::Int32);
    kernels::cpu::max_pool2d_forward(xf, yf, af, g);
    kernels::cpu::max_pool2d_forward(xd, yd, ad, g);
    const auto gotf = yf.to_double_vector(), gotd = yd.to_double_vector();
    for (size_t i = 0; i < gotf.size(); ++i) {
      ASSERT_EQ(af.data<int32_t>()[i], ad.data<int32_t>()[i]) << "argmax of output " << i;
      if (std::isnan(gotd[i])) ASSERT_TRUE(std::isnan(gotf[i])) << "output " << i;
      else ASSERT_EQ(gotf[i], gotd[i]) << "output " << i;
    }
  }
}

}  // namespace
}  // namespace dp
