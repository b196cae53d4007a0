// The autocast family (kernels/autocast.h, engine/autocast.h): the bf16 mode's scope, the cast
// cache of float32 weights, and the CPU's refusal. The bf16 mode of each op is tested in its own
// family's file (the <Family>Bf16Cuda suites).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "kernels/autocast.h"
#include "kernels/ops.h"

namespace dp {
namespace {

constexpr DType F32 = DType::Float32;
constexpr DType BF16 = DType::BFloat16;

TEST(Autocast, OffByDefaultAndScoped) {
  EXPECT_FALSE(autocast_enabled());
  {
    AutocastGuard on(BF16);
    EXPECT_EQ(autocast_dtype(), BF16);
    {
      AutocastGuard off(F32);
      EXPECT_FALSE(autocast_enabled());
    }
    EXPECT_TRUE(autocast_enabled());
  }
  EXPECT_EQ(autocast_dtype(), F32);
}

TEST(Autocast, WeightCastIsCachedPerRegionAndVersion) {
  Tensor w = Tensor::from_vector(std::vector<float>{0.1f, -2.0f, 3.5f, 1e-3f}, {2, 2});
  w.set_requires_grad(true);
  Tensor first, second, third;
  {
    AutocastGuard bf16(BF16);
    first = kernels::autocast::lower_weight(w);
    second = kernels::autocast::lower_weight(w);
    EXPECT_EQ(first.dtype(), BF16);
    EXPECT_TRUE(first.shares_storage(second)) << "the second cast in a region must reuse the first";
    EXPECT_TRUE(second.requires_grad());
    {
      NoGradGuard no_grad;
      kernels::add_(w, Tensor::ones({2, 2}), 1.0);  // an optimiser step: new version
    }
    third = kernels::autocast::lower_weight(w);
    EXPECT_FALSE(third.shares_storage(second)) << "a modified weight must be cast again";
    EXPECT_EQ(third.to_float_vector()[1], -1.0f);
  }
  {
    AutocastGuard bf16(BF16);
    EXPECT_FALSE(kernels::autocast::lower_weight(w).shares_storage(third)) << "a new region starts a new cache";
  }
  // The gradient of the cast goes back to the float32 weight as float32.
  kernels::sum(kernels::to_dtype(third, F32)).backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().dtype(), F32);
  EXPECT_EQ(w.grad().to_float_vector(), std::vector<float>(4, 1.0f));
}

TEST(Autocast, CpuTensorsThrowAClearError) {
  Tensor x = Tensor::ones({1, 2, 4, 4}), w = Tensor::ones({3, 2, 3, 3});
  AutocastGuard bf16(BF16);
  try {
    kernels::conv2d(x, w, Tensor(), 1, 1);
    FAIL() << "conv2d on the CPU under autocast must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bf16 mode is CUDA-only"), std::string::npos) << e.what();
  }
  EXPECT_THROW(kernels::batch_norm(x.to(BF16), Tensor(), Tensor(), Tensor(), Tensor(), true), Error);
}

}  // namespace
}  // namespace dp
