// The conv2d family (kernels/conv2d.h): naive reference, finite differences over
// stride/padding/bias/shape variants, every device against the CPU in both memory formats,
// thread-count independence of the weight gradient; on CUDA strict float32 and TF32, cuDNN's
// deterministic and benchmark modes, and bf16 (under autocast, on bf16 data, channels-last);
// the CPU's Winograd path against the reference (last section).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "engine/autocast.h"
#include "engine/rng.h"
#include "engine/thread_pool.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/winograd.h"
#include "kernels/cpu/winograd_gemm.h"
#include "kernels/ops.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

namespace dp {
namespace {

using testing::random_tensor;

struct ConvCase {
  int64_t n, c, h, w, k, r, s, stride, pad;
  bool bias;
};

std::string case_name(const ConvCase& c) {
  return fmt::format("n{}c{}h{}w{}k{}r{}s{}st{}p{}{}", c.n, c.c, c.h, c.w, c.k, c.r, c.s, c.stride, c.pad,
                     c.bias ? "b" : "");
}

// Plain direct convolution in double.
std::vector<double> naive_conv(const std::vector<double>& x, const std::vector<double>& w,
                               const std::vector<double>& b, const ConvCase& cc, int64_t P, int64_t Q) {
  std::vector<double> y(static_cast<size_t>(cc.n * cc.k * P * Q), 0.0);
  for (int64_t n = 0; n < cc.n; ++n)
    for (int64_t k = 0; k < cc.k; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          double acc = cc.bias ? b[k] : 0.0;
          for (int64_t c = 0; c < cc.c; ++c)
            for (int64_t r = 0; r < cc.r; ++r)
              for (int64_t s = 0; s < cc.s; ++s) {
                int64_t h = p * cc.stride - cc.pad + r, ww = q * cc.stride - cc.pad + s;
                if (h < 0 || h >= cc.h || ww < 0 || ww >= cc.w) continue;
                acc += x[((n * cc.c + c) * cc.h + h) * cc.w + ww] * w[((k * cc.c + c) * cc.r + r) * cc.s + s];
              }
          y[((n * cc.k + k) * P + p) * Q + q] = acc;
        }
  return y;
}

const std::vector<ConvCase> kCases = {
    {2, 3, 7, 6, 4, 3, 3, 1, 1, true},    // 3x3 same padding, non-square
    {2, 3, 7, 6, 4, 3, 3, 1, 0, false},   // valid
    {2, 2, 8, 7, 3, 3, 3, 2, 1, true},    // strided with padding (odd width)
    {1, 3, 6, 9, 2, 3, 2, 2, 0, false},   // strided, non-square kernel
    {3, 4, 5, 5, 6, 1, 1, 1, 0, true},    // pointwise fast path
    {2, 4, 6, 6, 3, 1, 1, 2, 0, false},   // strided 1x1 shortcut
    {9, 2, 10, 10, 3, 3, 3, 1, 1, true},  // several images per GEMM group, ragged last group
};

class Conv2dTest : public testing::DeviceTest {};

TEST_P(Conv2dTest, ForwardMatchesNaiveLoop) {
  Rng rng(11, 0);
  for (const ConvCase& cc : kCases) {
    SCOPED_TRACE(case_name(cc));
    Tensor x = random_tensor({cc.n, cc.c, cc.h, cc.w}, rng, -1, 1, DType::Float32);
    Tensor w = random_tensor({cc.k, cc.c, cc.r, cc.s}, rng, -1, 1, DType::Float32);
    Tensor b = random_tensor({cc.k}, rng, -1, 1, DType::Float32);
    Tensor y = kernels::conv2d(x.to(device()), w.to(device()), cc.bias ? b.to(device()) : Tensor(), cc.stride, cc.pad);
    const int64_t P = (cc.h + 2 * cc.pad - cc.r) / cc.stride + 1, Q = (cc.w + 2 * cc.pad - cc.s) / cc.stride + 1;
    ASSERT_EQ(y.shape(), (Shape{cc.n, cc.k, P, Q}));
    auto want = naive_conv(x.to_double_vector(), w.to_double_vector(), b.to_double_vector(), cc, P, Q);
    EXPECT_TRUE(testing::all_close(y, Tensor::from_vector(want, y.shape()),
                                   on_cuda() ? testing::Tolerance::tf32() : testing::Tolerance::fp32()));
  }
}

TEST_P(Conv2dTest, MatchesCpuWithGradients) {
  Rng rng(12, 0);
  for (const ConvCase& cc : kCases) {
    SCOPED_TRACE(case_name(cc));
    Tensor x = random_tensor({cc.n, cc.c, cc.h, cc.w}, rng);
    Tensor w = random_tensor({cc.k, cc.c, cc.r, cc.s}, rng);
    Tensor b = cc.bias ? random_tensor({cc.k}, rng) : Tensor();
    auto op = [&](const std::vector<Tensor>& in) { return kernels::conv2d(in[0], in[1], in[2], cc.stride, cc.pad); };
    EXPECT_TRUE(testing::matches_cpu(device(), op, {x, w, b}, testing::Tolerance::tf32()));
  }
}

// A channels-last input against NCHW on the CPU; the weight and bias stay contiguous.
TEST_P(Conv2dTest, ChannelsLast) {
  Rng rng(21, 0);
  struct Case {
    int64_t n, c, h, w, k, r, stride, pad;
    bool bias;
  };
  for (const Case& cc : {Case{2, 3, 9, 7, 8, 3, 1, 1, true}, Case{3, 5, 8, 8, 6, 3, 2, 1, false},
                         Case{2, 6, 6, 6, 4, 1, 2, 0, true}, Case{1, 4, 7, 7, 5, 7, 2, 3, false}}) {
    SCOPED_TRACE(fmt::format("conv {}x{} stride {} bias {}", cc.r, cc.r, cc.stride, cc.bias));
    Tensor x = random_tensor({cc.n, cc.c, cc.h, cc.w}, rng);
    Tensor w = random_tensor({cc.k, cc.c, cc.r, cc.r}, rng);
    Tensor b = cc.bias ? random_tensor({cc.k}, rng) : Tensor();
    EXPECT_TRUE(testing::channels_last_matches_cpu(
        device(), [&](const std::vector<Tensor>& in) { return kernels::conv2d(in[0], in[1], in[2], cc.stride, cc.pad); },
        {x, w, b}, {.channels_last = {true, false, false}}));
  }
}

DP_INSTANTIATE_DEVICE_TEST(Conv2dTest);

class Conv2dGrad : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dGrad, FiniteDifferencesForEveryInput) {
  const ConvCase cc = GetParam();
  Rng rng(13, 0);
  Tensor x = random_tensor({cc.n, cc.c, cc.h, cc.w}, rng);
  Tensor w = random_tensor({cc.k, cc.c, cc.r, cc.s}, rng);
  Tensor b = cc.bias ? random_tensor({cc.k}, rng) : Tensor();
  auto op = [&](const std::vector<Tensor>& in) { return kernels::conv2d(in[0], in[1], in[2], cc.stride, cc.pad); };
  EXPECT_TRUE(testing::gradcheck(op, {x, w, b}));
}

INSTANTIATE_TEST_SUITE_P(Cases, Conv2dGrad, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return case_name(info.param); });

TEST(Conv2dDeterminism, WeightGradientIndependentOfThreadCount) {
  Rng rng(14, 0);
  Tensor x = random_tensor({20, 8, 8, 8}, rng, -1, 1, DType::Float32);
  Tensor w = random_tensor({16, 8, 3, 3}, rng, -1, 1, DType::Float32);
  Tensor b = random_tensor({16}, rng, -1, 1, DType::Float32);
  auto grads = [&] {
    Tensor xl = x.clone().set_requires_grad(true), wl = w.clone().set_requires_grad(true);
    Tensor bl = b.clone().set_requires_grad(true);
    kernels::sum(kernels::conv2d(xl, wl, bl, 1, 1)).backward();
    return std::vector<Tensor>{xl.grad(), wl.grad(), bl.grad()};
  };
  const int saved = num_threads();
  set_num_threads(1);
  auto one = grads();
  set_num_threads(3);
  auto three = grads();
  set_num_threads(saved);
  for (size_t i = 0; i < one.size(); ++i)
    EXPECT_TRUE(testing::all_close(three[i], one[i], testing::Tolerance::exact(), "grad " + std::to_string(i)));
}

TEST(Conv2dErrors, ChecksShapesWithHints) {
  Tensor x = Tensor::zeros({1, 3, 5, 5});
  try {
    kernels::conv2d(x, Tensor::zeros({4, 2, 3, 3}), Tensor(), 1, 1);
    FAIL() << "expected dp::Error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("channels"), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_THROW(kernels::conv2d(Tensor::zeros({3, 5, 5}), Tensor::zeros({4, 3, 3, 3}), Tensor()), Error);
  EXPECT_THROW(kernels::conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({5})), Error);
  EXPECT_THROW(kernels::conv2d(x, Tensor::zeros({4, 3, 7, 7}), Tensor()), Error);
  EXPECT_THROW(kernels::conv2d(x, Tensor::zeros({4, 3, 3, 3}, DType::Float64), Tensor()), Error);
  EXPECT_THROW(kernels::conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), 0, 0), Error);
}

// ---- CUDA only: math modes, cuDNN modes, bf16 ----

class Conv2dCuda : public testing::CudaTestWithRng<2024, 5> {};

#ifdef DP_WITH_CUDA
TEST_F(Conv2dCuda, Conv2dForwardAndBackwardBothMathModes) {
  struct Case {
    int64_t n, c, h, w, k, r, stride, pad;
    bool bias;
  };
  const std::vector<Case> cases = {
      {2, 3, 9, 7, 4, 3, 1, 1, true},     // 3x3 same, non-square
      {2, 8, 8, 8, 16, 3, 2, 1, false},   // strided (downsampling block)
      {3, 16, 6, 6, 8, 1, 1, 0, true},    // pointwise
      {2, 16, 8, 8, 32, 1, 2, 0, false},  // strided 1x1 shortcut
      {2, 3, 32, 32, 8, 7, 2, 3, false},  // ResNet stem
      {4, 32, 7, 7, 32, 3, 1, 1, false},  // deep, small spatial
  };
  testing::for_each_math_mode([&](testing::Tolerance tol) {
    for (const Case& cc : cases) {
      SCOPED_TRACE("case n" + std::to_string(cc.n) + " c" + std::to_string(cc.c) + " k" + std::to_string(cc.k) +
                   " r" + std::to_string(cc.r) + " s" + std::to_string(cc.stride));
      Tensor x = rand({cc.n, cc.c, cc.h, cc.w}), w = rand({cc.k, cc.c, cc.r, cc.r}, -0.3, 0.3);
      Tensor b = cc.bias ? rand({cc.k}) : Tensor();
      const int64_t stride = cc.stride, pad = cc.pad;
      EXPECT_TRUE(testing::matches_cpu(
          Device::cuda(),
          [=](const std::vector<Tensor>& in) { return kernels::conv2d(in[0], in[1], in[2], stride, pad); }, {x, w, b},
          tol));
    }
  });
}

TEST_F(Conv2dCuda, Conv2dDeterministicModeAndBenchmarkModeAgree) {
  testing::CudaMathModeGuard restore;
  Tensor x = rand({4, 16, 12, 12}), w = rand({16, 16, 3, 3}, -0.3, 0.3);
  auto run = [&] {
    return kernels::conv2d(x.to(DType::Float32).to(Device::cuda()), w.to(DType::Float32).to(Device::cuda()), Tensor(),
                           1, 1);
  };
  cuda::set_allow_tf32(false);
  Tensor ref = run();
  cuda::set_deterministic(true);
  Tensor det = run();
  cuda::set_deterministic(false);
  cuda::set_cudnn_benchmark(true);
  Tensor bench = run();
  cuda::set_cudnn_benchmark(false);
  EXPECT_TRUE(testing::all_close(det, ref, testing::Tolerance::fp32_reordered(), "deterministic"));
  EXPECT_TRUE(testing::all_close(bench, ref, testing::Tolerance::fp32_reordered(), "benchmark"));
}
#endif

// cuDNN's bf16 convolutions do not always keep float32 partial sums: on an H100 (2026-11-26,
// 15 of 15 runs) the 1×1 stride-2 case put 3 of 2048 outputs ~0.0039 off (e.g. 0.0898 vs 0.0936)
// where the terms summed are O(1), i.e. an error that scales with the terms rather than the
// (cancelled) result, as TF32's does. So convolutions are compared against half the largest
// magnitude; a wrong convolution is off by O(max).
const testing::Tolerance kBf16Conv{1e-2, 1e-3, 0.5};
constexpr DType F32 = DType::Float32, BF16 = DType::BFloat16;

class Conv2dBf16Cuda : public testing::CudaTestWithRng<2025, 16> {};

// Under autocast: float32 parameters and inputs in, bf16 out, float32 gradients back.
TEST_F(Conv2dBf16Cuda, Conv2dUnderAutocast) {
  struct Geo {
    int64_t n, c, h, k, r, stride, pad;
  };
  for (Geo g : {Geo{4, 16, 10, 32, 3, 1, 1}, Geo{2, 3, 12, 16, 3, 1, 1}, Geo{3, 24, 9, 40, 3, 2, 1},
                Geo{2, 32, 8, 64, 1, 2, 0}}) {
    SCOPED_TRACE(::testing::Message() << "n" << g.n << " c" << g.c << " h" << g.h << " k" << g.k << " r" << g.r
                                      << " s" << g.stride);
    const int64_t stride = g.stride, pad = g.pad;
    EXPECT_TRUE(testing::bf16_matches_cpu(
        [&](const std::vector<Tensor>& in) { return kernels::conv2d(in[0], in[1], in[2], stride, pad); },
        {rand({g.n, g.c, g.h, g.h}), rand({g.k, g.c, g.r, g.r}, -0.3, 0.3), rand({g.k})},
        {F32, F32, F32}, true, BF16, kBf16Conv));
  }
}

TEST_F(Conv2dBf16Cuda, Conv2dOnBf16DataWithoutAutocast) {
  // bf16 activations from a previous layer: the weight is cast, the bias stays float32.
  EXPECT_TRUE(testing::bf16_matches_cpu(
      [](const std::vector<Tensor>& in) {
        const bool bf16 = in[0].dtype() == BF16;  // the CPU reference stays float32
        return kernels::conv2d(in[0], bf16 ? kernels::to_dtype(in[1], BF16) : in[1], in[2], 1, 1);
      },
      {rand({2, 8, 7, 7}), rand({12, 8, 3, 3}, -0.3, 0.3), rand({12})},
      {BF16, F32, F32}, false, BF16));
}

// bf16 convolution on channels-last input under autocast: the KRSC bf16 copy of the weight is
// cached, and its gradient comes back to the float32 NCHW parameter.
TEST_F(Conv2dBf16Cuda, ConvUnderAutocastMatchesCpuFloat32) {
  Rng rng(24, 0);
  Tensor x = random_tensor({4, 16, 10, 10}, rng, -1, 1, F32);
  Tensor w = random_tensor({32, 16, 3, 3}, rng, -0.2, 0.2, F32);
  Tensor b = random_tensor({32}, rng, -1, 1, F32);
  Tensor seed = random_tensor({4, 32, 10, 10}, rng, -1, 1, F32);
  // Reference: CPU float32, NCHW.
  Tensor wr = w.clone().set_requires_grad(true), br = b.clone().set_requires_grad(true);
  Tensor yr = kernels::conv2d(x, wr, br, 1, 1);
  yr.backward(seed);
  // CUDA bf16, channels-last.
  Device cuda = Device::cuda();
  Tensor wg = w.to(cuda).set_requires_grad(true), bg = b.to(cuda).set_requires_grad(true);
  Tensor xg = kernels::convert(x.to(cuda), F32, MemoryFormat::ChannelsLast);
  Tensor yg;
  {
    AutocastGuard bf16(BF16);
    yg = kernels::conv2d(xg, wg, bg, 1, 1);
  }
  EXPECT_EQ(yg.dtype(), BF16);
  EXPECT_TRUE(yg.is_channels_last());
  yg.backward(kernels::convert(seed.to(cuda), BF16, MemoryFormat::ChannelsLast));
  EXPECT_EQ(wg.grad().dtype(), F32);
  EXPECT_FALSE(wg.grad().is_channels_last());
  EXPECT_TRUE(testing::all_close(yg, yr, testing::Tolerance::bf16(), "output"));
  EXPECT_TRUE(testing::all_close(wg.grad(), wr.grad(), testing::Tolerance::bf16(), "weight gradient"));
  EXPECT_TRUE(testing::all_close(bg.grad(), br.grad(), testing::Tolerance::bf16(), "bias gradient"));
}

// Winograd F(2,3) and F(4,3) on the CPU (kernels/cpu/winograd.h), which float32 3×3 stride-1
// layers with at least 16 channels take, against the plain convolution in float64 (im2col, the
// CPU's reference path): forward, data gradient, weight gradient, odd sizes (1×1 maps, batch 1,
// channels not a multiple of the 16-lane vectors, maps not a multiple of the tile), every
// padding it accepts, the row-wise transforms (runs of short and long tile rows batched into
// whole vectors); its error bounded; results independent of the thread count and of the rest of
// the batch; which layers it takes.
namespace winograd_cpu {

using kernels::Conv2dGeometry;
namespace wino = kernels::cpu::winograd;


struct WinoCase {
  int64_t n, c, h, w, k, pad;
};

std::string case_name(const WinoCase& c) {
  return fmt::format("n{}c{}h{}w{}k{}p{}", c.n, c.c, c.h, c.w, c.k, c.pad);
}

const std::vector<WinoCase> kCases = {
    {2, 16, 8, 8, 16, 1},    // whole tiles of both sizes
    {1, 17, 1, 1, 19, 1},    // 1×1 map, batch 1, odd channels
    {3, 33, 7, 5, 20, 1},    // maps not a multiple of the tile, channels not of the lanes
    {2, 24, 9, 11, 18, 0},   // valid convolution
    {1, 16, 5, 6, 16, 2},    // padding 2 (output larger than the input)
    {5, 20, 14, 14, 40, 1},  // several blocks' worth of lanes (ragged last lane group)
    {20, 16, 32, 32, 16, 1}, // several blocks of tiles (the weight gradient sums across them)
    {3, 16, 6, 70, 17, 1},   // tile rows long enough for the row-wise input transform, both sizes
};

// ||a - b|| / ||b||.
double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

Tensor rnd(const Shape& shape, uint64_t stream) {
  Rng rng(2025, stream);
  return testing::random_tensor(shape, rng, -1.0, 1.0, DType::Float32);
}

Tensor as_double(const Tensor& t) { return Tensor::from_vector(t.to_double_vector(), t.shape()); }

struct Result {
  double forward, data, weight;
};

// Winograd in float32 vs im2col in float64 on the same (float32-rounded) inputs.
Result errors(const WinoCase& cc, int tile) {
  const Conv2dGeometry g = Conv2dGeometry::make({cc.n, cc.c, cc.h, cc.w}, {cc.k, cc.c, 3, 3}, 1, cc.pad);
  Tensor x = rnd({cc.n, cc.c, cc.h, cc.w}, 1), w = rnd({cc.k, cc.c, 3, 3}, 2);
  Tensor dy = rnd({cc.n, cc.k, g.p, g.q}, 3);
  Tensor y = Tensor::empty(dy.shape()), dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape());
  wino::forward(x.data<float>(), w.data<float>(), nullptr, y.data<float>(), g, tile);
  wino::backward_data(dy.data<float>(), w.data<float>(), dx.data<float>(), g, tile);
  wino::backward_weight(x.data<float>(), dy.data<float>(), dw.data<float>(), g, tile);

  Tensor xd = as_double(x), wd = as_double(w), dyd = as_double(dy);
  Tensor yd = Tensor::empty(dy.shape(), DType::Float64), dxd = Tensor::empty(x.shape(), DType::Float64);
  Tensor dwd = Tensor::empty(w.shape(), DType::Float64), no_db;
  kernels::cpu::conv2d_forward(xd, wd, Tensor(), yd, g);
  kernels::cpu::conv2d_backward_data(dyd, wd, dxd, g);
  kernels::cpu::conv2d_backward_weight(xd, dyd, dwd, no_db, g);
  return {rel_err(y.to_double_vector(), yd.to_double_vector()),
          rel_err(dx.to_double_vector(), dxd.to_double_vector()),
          rel_err(dw.to_double_vector(), dwd.to_double_vector())};
}

// The bounds: float32 im2col (a dot product of C·9 terms) sits near 1e-7 here. F(2,3)'s
// transforms only add and halve (a few ulps more); F(4,3)'s multiply by up to 8 and 1/24 and
// cancel, the known cost of larger tiles (Lavin & Gray; Barabasz et al. 2020): about 10× more
// (seen: F(2,3) ≤ 2.5e-7, F(4,3) ≤ 1.5e-6 over these cases).
// The weight gradient sums over every tile of the batch in the transformed domain before G^T·G.
constexpr double kBound2 = 1e-6, kBound4 = 5e-6;

class WinogradCpuTest : public ::testing::TestWithParam<WinoCase> {};

void expect_within(const WinoCase& cc, int tile, double bound) {
  const Result e = errors(cc, tile);
  EXPECT_LT(e.forward, bound);
  EXPECT_LT(e.data, bound);
  EXPECT_LT(e.weight, bound);
  std::printf("F(%d,3) %s: forward %.1e, data %.1e, weight %.1e\n", tile, case_name(cc).c_str(), e.forward, e.data,
              e.weight);
}

TEST_P(WinogradCpuTest, F2MatchesTheReferenceConvolution) { expect_within(GetParam(), 2, kBound2); }
TEST_P(WinogradCpuTest, F4MatchesTheReferenceConvolution) { expect_within(GetParam(), 4, kBound4); }

INSTANTIATE_TEST_SUITE_P(Shapes, WinogradCpuTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<WinoCase>& info) { return case_name(info.param); });

// The bias is added to every output once, cropped tiles included.
TEST(WinogradCpu, ForwardAddsTheBias) {
  const Conv2dGeometry g = Conv2dGeometry::make({2, 16, 5, 7}, {16, 16, 3, 3}, 1, 1);
  Tensor x = rnd({2, 16, 5, 7}, 4), w = rnd({16, 16, 3, 3}, 5);
  Tensor b = rnd({16}, 6);
  for (int tile : {2, 4}) {
    Tensor y0 = Tensor::empty({2, 16, 5, 7}), y1 = Tensor::empty({2, 16, 5, 7});
    wino::forward(x.data<float>(), w.data<float>(), nullptr, y0.data<float>(), g, tile);
    wino::forward(x.data<float>(), w.data<float>(), b.data<float>(), y1.data<float>(), g, tile);
    auto v0 = y0.to_double_vector(), v1 = y1.to_double_vector(), vb = b.to_double_vector();
    for (size_t i = 0; i < v0.size(); ++i) ASSERT_FLOAT_EQ(v1[i], static_cast<float>(v0[i] + vb[(i / 35) % 16]));
  }
}

// Enough tiles for several weight-gradient chunks: 1, 2 and 3 threads give the same bits.
TEST(WinogradCpu, ResultsDoNotDependOnTheThreadCount) {
  const Conv2dGeometry g = Conv2dGeometry::make({16, 32, 16, 16}, {32, 32, 3, 3}, 1, 1);
  Tensor x = rnd({16, 32, 16, 16}, 7), w = rnd({32, 32, 3, 3}, 8);
  Tensor dy = rnd({16, 32, 16, 16}, 9);
  const int saved = num_threads();
  for (int tile : {2, 4}) {
    std::vector<std::vector<double>> runs;
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      Tensor y = Tensor::empty(dy.shape()), dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape());
      wino::forward(x.data<float>(), w.data<float>(), nullptr, y.data<float>(), g, tile);
      wino::backward_data(dy.data<float>(), w.data<float>(), dx.data<float>(), g, tile);
      wino::backward_weight(x.data<float>(), dy.data<float>(), dw.data<float>(), g, tile);
      std::vector<double> all = y.to_double_vector();
      for (const Tensor* t : {&dx, &dw}) {
        auto v = t->to_double_vector();
        all.insert(all.end(), v.begin(), v.end());
      }
      runs.push_back(all);
    }
    EXPECT_EQ(runs[0], runs[1]) << "tile " << tile;
    EXPECT_EQ(runs[0], runs[2]) << "tile " << tile;
  }
  set_num_threads(saved);
}

// Data-parallel ranks each run a slice of the batch: an image's forward output and input
// gradient must be the same bits whatever else its batch holds (ResNet-18's layer shapes).
TEST(WinogradCpu, AnImagesResultDoesNotDependOnItsBatch) {
  struct S { int64_t c, hw, n; };
  for (S s : {S{64, 56, 8}, S{128, 28, 8}, S{256, 14, 8}, S{512, 7, 8}, S{16, 9, 8}, S{16, 32, 64}, S{32, 16, 64},
              S{64, 8, 64}})
    for (int tile : {2, 4}) {
      const int64_t n = s.n, half = n / 2, img = s.c * s.hw * s.hw;
      const Conv2dGeometry g = Conv2dGeometry::make({n, s.c, s.hw, s.hw}, {s.c, s.c, 3, 3}, 1, 1);
      const Conv2dGeometry gh = Conv2dGeometry::make({half, s.c, s.hw, s.hw}, {s.c, s.c, 3, 3}, 1, 1);
      Tensor x = rnd({n, s.c, s.hw, s.hw}, 11), w = rnd({s.c, s.c, 3, 3}, 12);
      Tensor y = Tensor::empty(x.shape()), dx = Tensor::empty(x.shape());
      wino::forward(x.data<float>(), w.data<float>(), nullptr, y.data<float>(), g, tile);
      wino::backward_data(x.data<float>(), w.data<float>(), dx.data<float>(), g, tile);
      Tensor yh = Tensor::empty({half, s.c, s.hw, s.hw}), dxh = Tensor::empty({half, s.c, s.hw, s.hw});
      wino::forward(x.data<float>() + half * img, w.data<float>(), nullptr, yh.data<float>(), gh, tile);
      wino::backward_data(x.data<float>() + half * img, w.data<float>(), dxh.data<float>(), gh, tile);
      EXPECT_EQ(0, std::memcmp(y.data<float>() + half * img, yh.data<float>(), half * img * 4))
          << "forward, tile " << tile << " c " << s.c;
      EXPECT_EQ(0, std::memcmp(dx.data<float>() + half * img, dxh.data<float>(), half * img * 4))
          << "data gradient, tile " << tile << " c " << s.c;
    }
}

// The Winograd products' own GEMM against a float64 reference: rows not a multiple of its 4-row
// panels, every column tail (16, 32, 48 past the 64-column strips), odd depths, leading dimensions
// wider than the matrices; columns past n and rows past m are left alone.
TEST(WinogradCpu, ProductKernelMatchesAReferenceGemm) {
  struct Case { int64_t m, n, k; };
  for (Case cc : {Case{1, 16, 1}, Case{5, 32, 3}, Case{7, 48, 17}, Case{16, 64, 64}, Case{19, 80, 33}, Case{64, 208, 9}}) {
    SCOPED_TRACE(fmt::format("m{} n{} k{}", cc.m, cc.n, cc.k));
    const int64_t lda = cc.k + 3, ldb = cc.n + 16, ldc = cc.n + 32;
    Tensor a = rnd({cc.m, lda}, 21), b = rnd({cc.k, ldb}, 22);
    std::vector<float> c(static_cast<size_t>((cc.m + 1) * ldc), 7.0f);
    wino::gemm_rows(a.data<float>(), lda, b.data<float>(), ldb, c.data(), ldc, cc.m, cc.n, cc.k);
    const float* pa = a.data<float>();
    const float* pb = b.data<float>();
    for (int64_t i = 0; i <= cc.m; ++i)
      for (int64_t j = 0; j < ldc; ++j) {
        const float got = c[static_cast<size_t>(i * ldc + j)];
        if (i == cc.m || j >= cc.n) {
          ASSERT_EQ(got, 7.0f) << "wrote outside C at " << i << ", " << j;
          continue;
        }
        double want = 0, scale = 0;
        for (int64_t p = 0; p < cc.k; ++p) {
          want += static_cast<double>(pa[i * lda + p]) * pb[p * ldb + j];
          scale += std::abs(static_cast<double>(pa[i * lda + p]) * pb[p * ldb + j]);
        }
        ASSERT_NEAR(got, want, 1e-6 * scale + 1e-30) << "at " << i << ", " << j;
      }
  }
}

// Data-parallel ranks sum their halves' weight gradients: a batch's dw equals the sum of its
// halves' to rounding (the blocks of tiles, and so the sums' order, differ).
TEST(WinogradCpu, AWeightGradientIsTheSumOfItsHalvesWeightGradients) {
  struct S { int64_t n, c, hw; };
  for (S s : {S{64, 16, 32}, S{64, 32, 16}, S{64, 64, 8}, S{8, 512, 7}, S{8, 64, 56}}) {
    SCOPED_TRACE(fmt::format("n{} c{} hw{}", s.n, s.c, s.hw));
    const int64_t half = s.n / 2, img = s.c * s.hw * s.hw;
    const Conv2dGeometry g = Conv2dGeometry::make({s.n, s.c, s.hw, s.hw}, {s.c, s.c, 3, 3}, 1, 1);
    const Conv2dGeometry gh = Conv2dGeometry::make({half, s.c, s.hw, s.hw}, {s.c, s.c, 3, 3}, 1, 1);
    Tensor x = rnd({s.n, s.c, s.hw, s.hw}, 13), dy = rnd({s.n, s.c, s.hw, s.hw}, 14);
    Tensor dw = Tensor::empty({s.c, s.c, 3, 3}), dw0 = Tensor::empty(dw.shape()), dw1 = Tensor::empty(dw.shape());
    wino::backward_weight(x.data<float>(), dy.data<float>(), dw.data<float>(), g, 2);
    wino::backward_weight(x.data<float>(), dy.data<float>(), dw0.data<float>(), gh, 2);
    wino::backward_weight(x.data<float>() + half * img, dy.data<float>() + half * img, dw1.data<float>(), gh, 2);
    std::vector<double> sum = dw0.to_double_vector();
    const std::vector<double> second = dw1.to_double_vector();
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += second[i];
    EXPECT_LT(rel_err(dw.to_double_vector(), sum), 1e-6);
  }
}

TEST(WinogradCpu, TakesOnlyStrideOne3x3LayersWithEnoughChannels) {
  auto tile = [](Shape x, Shape w, int64_t stride, int64_t pad) {
    return wino::tile_size_for(Conv2dGeometry::make(x, w, stride, pad), wino::Pass::Forward);
  };
  EXPECT_GT(tile({8, 64, 32, 32}, {64, 64, 3, 3}, 1, 1), 0);
  EXPECT_EQ(tile({8, 64, 32, 32}, {64, 64, 3, 3}, 2, 1), 0);  // strided
  EXPECT_EQ(tile({8, 64, 32, 32}, {64, 64, 1, 1}, 1, 0), 0);  // pointwise
  EXPECT_EQ(tile({8, 3, 32, 32}, {16, 3, 3, 3}, 1, 1), 0);    // the RGB stem
  EXPECT_EQ(tile({8, 64, 32, 32}, {64, 64, 3, 3}, 1, 3), 0);  // padding past 2
}

// The public entry point sends a float32 layer Winograd takes through it (same bits), and
// float64 through im2col (the finite-difference checks' reference).
TEST(WinogradCpu, Conv2dForwardDispatchesFloat32ToIt) {
  const Conv2dGeometry g = Conv2dGeometry::make({2, 32, 9, 9}, {32, 32, 3, 3}, 1, 1);
  const int tile = wino::tile_size_for(g, wino::Pass::Forward);
  ASSERT_GT(tile, 0);
  Tensor x = rnd({2, 32, 9, 9}, 10), w = rnd({32, 32, 3, 3}, 11);
  Tensor y0 = Tensor::empty({2, 32, 9, 9}), y1 = Tensor::empty({2, 32, 9, 9});
  wino::forward(x.data<float>(), w.data<float>(), nullptr, y0.data<float>(), g, tile);
  kernels::cpu::conv2d_forward(x, w, Tensor(), y1, g);
  EXPECT_EQ(y0.to_double_vector(), y1.to_double_vector());
}

}  // namespace winograd_cpu

}  // namespace
}  // namespace dp
