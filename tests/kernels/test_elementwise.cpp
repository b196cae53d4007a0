// The elementwise family (kernels/elementwise.h): fused ops against their unfused compositions,
// channels-last inputs against NCHW on every device; on CUDA elementwise ops and reductions
// against the CPU, exact fills and casts between every dtype, and the bf16 mode.
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/ops.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

namespace dp {
namespace {

using testing::random_tensor;

class ElementwiseTest : public testing::DeviceTest {};

// add_relu(a, b) == relu(add(a, b)) bit for bit, values and both gradients (float32 sums are
// correctly rounded on both backends), in both memory formats; a NaN sum becomes 0 like relu's.
TEST_P(ElementwiseTest, AddReluEqualsReluOfAdd) {
  Rng rng(51, 0);
  Tensor a0 = random_tensor({3, 4, 5, 6}, rng, -1, 1, DType::Float32);
  Tensor b0 = random_tensor({3, 4, 5, 6}, rng, -1, 1, DType::Float32);
  Tensor seed = random_tensor({3, 4, 5, 6}, rng, -1, 1, DType::Float32).to(device());
  std::vector<float> with_nan = a0.to_float_vector();
  with_nan[7] = std::nanf("");
  a0 = Tensor::from_vector(with_nan, a0.shape());
  for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
    SCOPED_TRACE(memory_format_name(format));
    auto run = [&](bool fused) {
      Tensor a = kernels::convert(a0.to(device()).clone(), DType::Float32, format).set_requires_grad(true);
      Tensor b = b0.to(device()).clone().set_requires_grad(true);
      Tensor y = fused ? kernels::add_relu(a, b) : kernels::relu(kernels::add(a, b));
      y.backward(seed);
      return std::vector<Tensor>{y, a.grad(), b.grad()};
    };
    std::vector<Tensor> fused = run(true), reference = run(false);
    EXPECT_EQ(fused[0].is_channels_last(), format == MemoryFormat::ChannelsLast);
    EXPECT_EQ(fused[0].to_float_vector()[7], 0.0f);
    for (size_t i = 0; i < fused.size(); ++i)
      EXPECT_TRUE(testing::all_close(fused[i], reference[i], testing::Tolerance::exact(), std::to_string(i)));
  }
}

// Channels-last inputs against NCHW on the CPU; add() of mixed formats computes in the first
// operand's, each gradient comes back in its input's format; flatten gives NCHW-ordered rows.
TEST_P(ElementwiseTest, ChannelsLast) {
  Rng rng(23, 0);
  Tensor x = random_tensor({5, 67, 7, 7}, rng);
  Tensor other = random_tensor({5, 67, 7, 7}, rng);
  const testing::OpFn add = [](const std::vector<Tensor>& in) { return kernels::add(in[0], in[1]); };
  EXPECT_TRUE(testing::channels_last_matches_cpu(
      device(), [](const std::vector<Tensor>& in) { return kernels::relu(in[0]); }, {x}, {}))
      << "relu";
  EXPECT_TRUE(testing::channels_last_matches_cpu(device(), add, {x, other}, {.channels_last = {true, true}}))
      << "add, both channels-last";
  EXPECT_TRUE(testing::channels_last_matches_cpu(device(), add, {x, other}, {.channels_last = {true, false}}))
      << "add, mixed formats";
  EXPECT_TRUE(testing::channels_last_matches_cpu(
      device(), [](const std::vector<Tensor>& in) { return kernels::flatten(in[0]); }, {x}, {}))
      << "flatten";
}

DP_INSTANTIATE_DEVICE_TEST(ElementwiseTest);

// ---- CUDA only: ops and reductions against the CPU, fills and casts, the bf16 mode ----

class ElementwiseCuda : public testing::CudaTestWithRng<2024, 5> {};

TEST_F(ElementwiseCuda, ElementwiseOpsAndReductions) {
  const Device cuda = Device::cuda();
  const testing::Tolerance strict = testing::Tolerance::fp32_reordered();
  Tensor a = rand({3, 1001}), b = rand({3, 1001});
  EXPECT_TRUE(testing::matches_cpu(cuda, [](const std::vector<Tensor>& in) { return kernels::add(in[0], in[1]); },
                                   {a, b}, strict));
  EXPECT_TRUE(testing::matches_cpu(cuda, [](const std::vector<Tensor>& in) { return kernels::mul(in[0], -2.5); }, {a},
                                   strict));
  EXPECT_TRUE(testing::matches_cpu(cuda, [](const std::vector<Tensor>& in) { return kernels::relu(in[0]); }, {a},
                                   strict));
  Tensor big = rand({1 << 20});
  EXPECT_TRUE(testing::matches_cpu(cuda, [](const std::vector<Tensor>& in) { return kernels::sum(in[0]); }, {big},
                                   strict));
  EXPECT_TRUE(testing::matches_cpu(cuda, [](const std::vector<Tensor>& in) { return kernels::mean(in[0]); }, {big},
                                   strict));
  Tensor y = a.to(DType::Float32).to(cuda);
  kernels::add_(y, b.to(DType::Float32).to(cuda), 0.5);
  Tensor y_cpu = a.to(DType::Float32);
  kernels::add_(y_cpu, b.to(DType::Float32), 0.5);
  EXPECT_TRUE(testing::all_close(y, y_cpu, strict, "add_"));
}

TEST_F(ElementwiseCuda, SumIsDeterministic) {
  Tensor x = rand({3, 777777}).to(DType::Float32).to(Device::cuda());
  double first = kernels::sum(x).item();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(kernels::sum(x).item(), first);
}

TEST_F(ElementwiseCuda, FillAndCastAreExactForEveryDtype) {
  const std::vector<DType> types = {DType::Float32, DType::Float64, DType::BFloat16,
                                    DType::Int32,   DType::Int64,   DType::UInt8};
  Tensor src = rand({257}, 0.0, 200.0);
  for (DType from : types) {
    Tensor x_cpu = src.to(from);
    Tensor x_gpu = x_cpu.to(Device::cuda());
    for (DType to : types) {
      SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + dtype_name(to));
      Tensor want = x_cpu.to(to);
      Tensor got = x_gpu.to(to).to(Device::cpu());
      ASSERT_EQ(got.dtype(), to);
      EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()), 0);
    }
    Tensor f = Tensor::full({33}, 3.75, from, Device::cuda()).to(Device::cpu());
    Tensor f_cpu = Tensor::full({33}, 3.75, from);
    EXPECT_EQ(std::memcmp(f.raw_data(), f_cpu.raw_data(), f.nbytes()), 0) << dtype_name(from);
  }
}

// bf16 activations stay bf16; a mixed residual under autocast is promoted to float32, each
// gradient in its input's dtype.
class ElementwiseBf16Cuda : public testing::CudaTestWithRng<2025, 16> {};

TEST_F(ElementwiseBf16Cuda, ElementwiseOps) {
  constexpr DType F32 = DType::Float32, BF16 = DType::BFloat16;
  Tensor a = rand({3, 1001}), b = rand({3, 1001});
  EXPECT_TRUE(testing::bf16_matches_cpu([](const std::vector<Tensor>& in) { return kernels::relu(in[0]); }, {a},
                                        {BF16}, true, BF16));
  EXPECT_TRUE(testing::bf16_matches_cpu([](const std::vector<Tensor>& in) { return kernels::add(in[0], in[1]); },
                                        {a, b}, {BF16, BF16}, true, BF16));
  EXPECT_TRUE(testing::bf16_matches_cpu([](const std::vector<Tensor>& in) { return kernels::add(in[0], in[1]); },
                                        {a, b}, {BF16, F32}, true, F32));
  EXPECT_TRUE(testing::bf16_matches_cpu([](const std::vector<Tensor>& in) { return kernels::mul(in[0], -2.5); }, {a},
                                        {BF16}, true, BF16));
  EXPECT_TRUE(testing::bf16_matches_cpu([](const std::vector<Tensor>& in) { return kernels::sum(in[0]); }, {a},
                                        {BF16}, true, BF16));
  EXPECT_TRUE(testing::bf16_matches_cpu([](const std::vector<Tensor>& in) { return kernels::to_dtype(in[0], BF16); },
                                        {a}, {F32}, false, BF16));
}

}  // namespace
}  // namespace dp
