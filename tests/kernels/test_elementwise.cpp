// Fused elementwise ops against their unfused compositions.
#include <gtest/gtest.h>

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

DP_INSTANTIATE_DEVICE_TEST(ElementwiseTest);

}  // namespace
}  // namespace dp
