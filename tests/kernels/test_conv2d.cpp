// conv2d: naive reference, finite differences over stride/padding/bias/shape variants,
// device comparison, thread-count independence of the weight gradient.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "engine/thread_pool.h"
#include "kernels/conv2d.h"
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

}  // namespace
}  // namespace dp
