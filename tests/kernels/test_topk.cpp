// The topk family (kernels/topk.h): top-1/top-5 correct counts on every device.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/ops.h"
#include "tests/common/devices.h"

namespace dp {
namespace {

class TopKTest : public testing::DeviceTest {};

// Top-1/top-5 counts against a direct count; ties count in the label's favour; labels out of
// range count as wrong; counts accumulate; CUDA (a warp per row) matches the CPU exactly.
TEST_P(TopKTest, TopKCorrectCounts) {
  const int64_t rows = 37, classes = 70;
  Rng rng(41, 0);
  std::vector<float> z(static_cast<size_t>(rows * classes));
  for (float& v : z) v = static_cast<float>(std::floor(rng.uniform(0, 40)));  // ties too
  std::vector<int64_t> y;
  for (int64_t i = 0; i < rows; ++i) y.push_back(i == 5 ? classes : i == 6 ? -1 : (i * 7) % classes);
  int64_t want1 = 0, want5 = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (y[i] < 0 || y[i] >= classes) continue;
    int64_t higher = 0;
    for (int64_t c = 0; c < classes; ++c) higher += z[i * classes + c] > z[i * classes + y[i]];
    want1 += higher == 0;
    want5 += higher < 5;
  }
  ASSERT_GT(want1, 0);
  ASSERT_GT(want5, want1);
  Tensor counts = Tensor::from_vector(std::vector<int64_t>{100, 200}, {2}).to(device());
  kernels::topk_correct_(counts, Tensor::from_vector(z, {rows, classes}).to(device()),
                     Tensor::from_vector(y, {rows}).to(device()));
  EXPECT_EQ(counts.to_double_vector(), (std::vector<double>{100.0 + want1, 200.0 + want5}));
  EXPECT_THROW(kernels::topk_correct_(counts, Tensor::zeros({3, 4}, DType::Float32, device()),
                                  Tensor::zeros({2}, DType::Int64, device())),
               Error);
}

DP_INSTANTIATE_DEVICE_TEST(TopKTest);

}  // namespace
}  // namespace dp
