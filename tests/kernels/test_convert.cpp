// The convert family (kernels/convert.h, kernels/layout.h): channels-last (NHWC) tensors, the
// memory layout itself, conversions of dtype and format, and their gradients. Every other op on
// channels-last input is tested in its own family's file against NCHW on the CPU.
#include <gtest/gtest.h>

#include <vector>

#include "engine/autograd.h"
#include "kernels/ops.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

namespace dp {
namespace {

using testing::random_tensor;
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

// 0, 1, 2, … in logical NCHW order.
Tensor iota(const Shape& shape, DType dtype = DType::Float32) {
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return Tensor::from_vector(v, shape).to(dtype);
}

TEST(Convert, MemoryIsNhwc) {
  const int64_t N = 2, C = 3, H = 4, W = 5;
  Tensor x = kernels::convert(iota({N, C, H, W}), DType::Float32, kCL);
  ASSERT_TRUE(x.is_channels_last());
  EXPECT_EQ(x.shape(), (Shape{N, C, H, W}));
  EXPECT_EQ(x.str(), "float32[2, 3, 4, 5] on cpu, channels_last");
  const float* p = x.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w)
          ASSERT_EQ(p[((n * H + h) * W + w) * C + c], static_cast<float>(((n * C + c) * H + h) * W + w));
  // Host copies are in logical order whatever the layout.
  EXPECT_EQ(x.to_float_vector(), iota({N, C, H, W}).to_float_vector());
  EXPECT_EQ(kernels::convert(x, DType::Float32, MemoryFormat::Contiguous).to_float_vector(), x.to_float_vector());
}

TEST(Convert, RoundTripsEveryDtypeAndConvertsDtypeOnTheWay) {
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64, DType::Int32, DType::UInt8}) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor x = iota({3, 5, 2, 3}, dt);
    Tensor back = kernels::convert(kernels::convert(x, dt, kCL), dt, MemoryFormat::Contiguous);
    EXPECT_FALSE(back.is_channels_last());
    EXPECT_EQ(back.to_double_vector(), x.to_double_vector());
  }
  Tensor x = iota({2, 3, 2, 2});
  Tensor y = kernels::convert(x, DType::Float64, kCL);
  EXPECT_EQ(y.dtype(), DType::Float64);
  EXPECT_TRUE(y.is_channels_last());
  EXPECT_EQ(y.to_double_vector(), x.to_double_vector());
}

TEST(Convert, CoincidingLayoutsStayContiguous) {
  // C == 1 or H·W == 1: both formats order the elements alike, so there is one flag for them.
  EXPECT_FALSE(Tensor::empty({4, 1, 5, 5}, DType::Float32, Device::cpu(), kCL).is_channels_last());
  EXPECT_FALSE(Tensor::empty({4, 8, 1, 1}, DType::Float32, Device::cpu(), kCL).is_channels_last());
  EXPECT_TRUE(Tensor::empty({4, 8, 2, 1}, DType::Float32, Device::cpu(), kCL).is_channels_last());
  EXPECT_THROW(Tensor::empty({4, 8, 2}, DType::Float32, Device::cpu(), kCL), Error);
  EXPECT_THROW(kernels::to_memory_format(Tensor::zeros({4, 8}), kCL), Error);
}

TEST(Convert, ViewsCopiesAndReshape) {
  Tensor x = kernels::convert(iota({4, 3, 2, 2}), DType::Float32, kCL);
  EXPECT_THROW(x.view({4, 12}), Error) << "a view would reinterpret NHWC memory as NCHW";
  // reshape converts first, so the flattened rows are in NCHW order (like PyTorch's).
  EXPECT_EQ(kernels::flatten(x).to_float_vector(), iota({4, 12}).to_float_vector());
  EXPECT_TRUE(x.clone().is_channels_last());
  EXPECT_TRUE(x.detach().is_channels_last());
  EXPECT_TRUE(x.to(DType::Float64).is_channels_last());
  Tensor rows = x.narrow0(1, 2);
  EXPECT_TRUE(rows.is_channels_last());
  EXPECT_EQ(rows.to_float_vector(), iota({4, 3, 2, 2}).narrow0(1, 2).to_float_vector());
  Tensor dst = Tensor::zeros({4, 3, 2, 2});
  EXPECT_THROW(dst.copy_from(x), Error);
}

TEST(Convert, ConversionIsDifferentiable) {
  Rng rng(3, 0);
  Tensor x = random_tensor({2, 3, 4, 4}, rng, -1, 1, DType::Float32).set_requires_grad(true);
  Tensor weights = random_tensor({2, 3, 4, 4}, rng, -1, 1, DType::Float32);
  Tensor y = kernels::to_memory_format(x, kCL);
  ASSERT_TRUE(y.is_channels_last());
  EXPECT_TRUE(kernels::to_memory_format(y, kCL).same(y)) << "no copy when already in the format";
  kernels::sum(kernels::relu(y)).backward();
  EXPECT_FALSE(x.grad().is_channels_last());
  for (size_t i = 0; i < x.to_float_vector().size(); ++i)
    ASSERT_EQ(x.grad().to_float_vector()[i], x.to_float_vector()[i] > 0 ? 1.0f : 0.0f);
  // The gradient of the conversion itself is the seed converted back to NCHW.
  x.zero_grad();
  kernels::to_memory_format(x, kCL).backward(kernels::convert(weights, DType::Float32, kCL));
  EXPECT_FALSE(x.grad().is_channels_last());
  EXPECT_EQ(x.grad().to_float_vector(), weights.to_float_vector());
}

TEST(Convert, GradientsKeepTheFormatOfTheirTensor) {
  Tensor a = kernels::convert(iota({2, 3, 2, 2}), DType::Float32, kCL).set_requires_grad(true);
  Tensor b = iota({2, 3, 2, 2}).set_requires_grad(true);
  Tensor s = kernels::add(a, b);  // mixed formats: computed in a's
  EXPECT_TRUE(s.is_channels_last());
  EXPECT_EQ(s.to_float_vector(), kernels::mul(iota({2, 3, 2, 2}), 2.0).to_float_vector());
  // A seed gradient in the other format is accepted and converted.
  s.backward(iota({2, 3, 2, 2}));
  EXPECT_TRUE(a.grad().is_channels_last());
  EXPECT_FALSE(b.grad().is_channels_last());
  EXPECT_EQ(a.grad().to_float_vector(), iota({2, 3, 2, 2}).to_float_vector());
  EXPECT_EQ(b.grad().to_float_vector(), iota({2, 3, 2, 2}).to_float_vector());
  // In-place accumulation (what optimisers do) across formats.
  Tensor acc = iota({2, 3, 2, 2});
  {
    NoGradGuard no_grad;
    kernels::add_(acc, a.grad(), -1.0);
  }
  EXPECT_EQ(acc.to_float_vector(), std::vector<float>(24, 0.0f));
}

}  // namespace
}  // namespace dp
