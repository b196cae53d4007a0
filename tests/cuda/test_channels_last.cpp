// Channels-last (NHWC) activations on CUDA against the CPU's NCHW reference: batch norm (train
// with running statistics, eval, backward with dgamma/dbeta) and pooling (max, average, global
// average), forward and backward, in float32, float64 and bf16.
//
// The CUDA side runs on a channels-last leaf (kernels::convert of the NCHW input), so the native
// NHWC kernels of kernels/cuda/{batch_norm,pooling}.cu are what is measured. Each case checks:
//   - the output's values (to_float_vector() gives logical NCHW order whatever the format) and
//     its format (channels-last, unless the shape makes both formats coincide, e.g. P·Q == 1);
//   - the input gradients the op's backward rule returns (called directly, so autograd's own
//     format conversions cannot hide a wrong layout): values, and dx channels-last;
//   - the leaves' gradients after a full backward() (dgamma, dbeta, dx).
// Odd sizes on purpose: C = 3 and 67 leave channel tiles of 32 partly empty, H = W = 7 and N = 5
// make no dimension a multiple of another.
// Tolerances (testing::all_close): float32/float64 1e-5 relative (our kernels sum in double, in
// another order than the CPU); bf16 inputs are rounded to bf16 values first and compared with
// 1e-2 relative (one bf16 rounding of each output), as in test_bf16.cpp.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/rng.h"
#include "kernels/ops.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

namespace dp {
namespace {

using testing::Tolerance;

const Device kCuda = Device::cuda();
constexpr DType F32 = DType::Float32;
constexpr DType F64 = DType::Float64;
constexpr DType BF16 = DType::BFloat16;
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;
const Tolerance kStrict{1e-5, 1e-6, 0.1};
const Tolerance kBf16{1e-2, 1e-3, 0.1};

Tolerance tolerance_for(DType dtype) { return dtype == BF16 ? kBf16 : kStrict; }

// float32 values that bf16 represents exactly (so both sides see the same inputs).
Tensor bf16_values(const Tensor& t) { return t.to(F32).to(BF16).to(F32); }

// in[0] is the activation; the others are per-channel parameters (or empty).
using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Run {
  Tensor out;
  std::vector<Tensor> rule_grads;  // what the op's backward rule returned, per input
  std::vector<Tensor> leaf_grads;  // .grad() of each leaf after backward()
};

// CPU: float32 NCHW leaves. CUDA: the activation as a channels-last leaf in `dtype`, parameters
// in its statistics dtype (float32 for bf16). Backward seeds with the same random weights.
Run run(const OpFn& op, const std::vector<Tensor>& inputs, Device device, DType dtype) {
  const bool cuda = device.is_cuda();
  const DType param_dtype = dtype == BF16 ? F32 : dtype;
  std::vector<Tensor> leaves;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      leaves.emplace_back();
      continue;
    }
    Tensor leaf;
    if (!cuda)
      leaf = inputs[i].to(F32).clone();
    else if (i == 0)
      leaf = kernels::convert(inputs[i].to(F32).to(kCuda), dtype, kCL);
    else
      leaf = inputs[i].to(param_dtype).to(kCuda);
    leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  Run r;
  r.out = op(leaves);
  Rng rng(7, 7);
  Tensor seed = bf16_values(testing::random_tensor(r.out.shape(), rng));
  seed = cuda ? kernels::convert(seed.to(kCuda), r.out.dtype(), r.out.memory_format()) : seed.to(r.out.dtype());
  {
    NoGradGuard no_grad;
    r.rule_grads = r.out.grad_fn()->backward(seed);
  }
  r.out.backward(seed);
  for (const Tensor& leaf : leaves) r.leaf_grads.push_back(leaf.defined() ? leaf.grad() : Tensor());
  return r;
}

// A 4-D tensor of this shape is stored channels-last unless both formats coincide.
bool expect_channels_last(const Tensor& t) { return t.dim() == 4 && !formats_coincide(t.shape()); }

::testing::AssertionResult channels_last_matches_cpu(const OpFn& op, std::vector<Tensor> inputs, DType dtype) {
  if (dtype == BF16)
    for (Tensor& t : inputs)
      if (t.defined()) t = bf16_values(t);
  const Tolerance tol = tolerance_for(dtype);
  Run ref = run(op, inputs, Device::cpu(), dtype);
  Run got = run(op, inputs, kCuda, dtype);
  if (got.out.dtype() != dtype)
    return ::testing::AssertionFailure() << "output is " << got.out.str() << ", expected " << dtype_name(dtype);
  if (got.out.is_channels_last() != expect_channels_last(got.out))
    return ::testing::AssertionFailure() << "output " << got.out.str() << " is in the wrong memory format";
  auto r = testing::all_close(got.out, ref.out, tol, "output");
  if (!r) return r;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    const std::string what = "input " + std::to_string(i);
    const Tensor& rule = got.rule_grads.at(i);
    if (!rule.defined()) return ::testing::AssertionFailure() << what << ": the backward rule gave no gradient";
    if (i == 0 && !rule.is_channels_last())
      return ::testing::AssertionFailure() << "dx " << rule.str() << " is not channels-last";
    r = testing::all_close(rule, ref.rule_grads.at(i), tol, "backward rule's gradient of " + what);
    if (!r) return r;
    r = testing::all_close(got.leaf_grads.at(i), ref.leaf_grads.at(i), tol, "leaf gradient of " + what);
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

class CudaChannelsLast : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device on this machine: channels-last CUDA tests skipped";
  }
  Rng rng_{2026, 11};
  Tensor rand(const Shape& s, double lo = -1.0, double hi = 1.0) { return testing::random_tensor(s, rng_, lo, hi); }
};

const std::vector<Shape> kBnShapes = {
    {5, 67, 7, 7},    // three channel tiles, the last one 3 wide
    {5, 3, 7, 7},     // one tile, 29 idle lanes
    {8, 32, 4, 4},    // exactly one tile
    {16, 40, 32, 32}  // enough rows for many splits per tile
};

// ---- batch normalisation ----

TEST_F(CudaChannelsLast, BatchNormTrainForwardBackwardAndRunningStats) {
  for (DType dtype : {F32, F64, BF16}) {
    for (const Shape& shape : kBnShapes) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape_str(shape));
      const int64_t c = shape[1];
      const DType stats = dtype == BF16 ? F32 : dtype;
      Tensor rm0 = rand({c}, -0.5, 0.5), rv0 = rand({c}, 0.5, 2.0);
      Tensor rm_cpu = rm0.to(F32), rv_cpu = rv0.to(F32);
      Tensor rm_gpu = rm0.to(stats).to(kCuda), rv_gpu = rv0.to(stats).to(kCuda);
      auto op = [&](const std::vector<Tensor>& in) {
        const bool cuda = in[0].device().is_cuda();
        return kernels::batch_norm(in[0], in[1], in[2], cuda ? rm_gpu : rm_cpu, cuda ? rv_gpu : rv_cpu, true, 0.3, 1e-5);
      };
      EXPECT_TRUE(channels_last_matches_cpu(op, {rand(shape, -2.0, 3.0), rand({c}, 0.5, 1.5), rand({c})}, dtype));
      // Running statistics: one update from each side (float32 on the CPU).
      EXPECT_TRUE(testing::all_close(rm_gpu, rm_cpu, kStrict, "running_mean"));
      EXPECT_TRUE(testing::all_close(rv_gpu, rv_cpu, kStrict, "running_var"));
    }
  }
}

TEST_F(CudaChannelsLast, BatchNormEvalForwardAndBackward) {
  for (DType dtype : {F32, BF16}) {
    for (const Shape& shape : {Shape{5, 67, 7, 7}, Shape{5, 3, 7, 7}}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape_str(shape));
      const int64_t c = shape[1];
      const DType stats = dtype == BF16 ? F32 : dtype;
      Tensor rm = rand({c}, -0.5, 0.5), rv = rand({c}, 0.5, 2.0);
      auto op = [&](const std::vector<Tensor>& in) {
        const DType sd = in[0].device().is_cuda() ? stats : F32;
        return kernels::batch_norm(in[0], in[1], in[2], rm.to(sd).to(in[0].device()), rv.to(sd).to(in[0].device()),
                               false, 0.1, 1e-5);
      };
      EXPECT_TRUE(channels_last_matches_cpu(op, {rand(shape, -2.0, 3.0), rand({c}, 0.5, 1.5), rand({c})}, dtype));
    }
  }
}

TEST_F(CudaChannelsLast, BatchNormIsDeterministic) {
  Tensor x = kernels::convert(rand({32, 48, 14, 14}).to(F32).to(kCuda), F32, kCL);
  x.set_requires_grad(true);
  Tensor g = Tensor::ones({48}, F32, kCuda), b = Tensor::zeros({48}, F32, kCuda);
  Tensor seed = kernels::convert(rand({32, 48, 14, 14}).to(F32).to(kCuda), F32, kCL);
  std::vector<float> y0, dx0;
  for (int rep = 0; rep < 2; ++rep) {
    x.zero_grad();
    Tensor y = kernels::batch_norm(x, g, b, Tensor(), Tensor(), true);
    y.backward(seed);
    if (rep == 0) {
      y0 = y.to_float_vector();
      dx0 = x.grad().to_float_vector();
    } else {
      EXPECT_EQ(y.to_float_vector(), y0);
      EXPECT_EQ(x.grad().to_float_vector(), dx0);
    }
  }
}

// ---- pooling ----

TEST_F(CudaChannelsLast, MaxAndAvgPoolForwardAndBackward) {
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
          return cs.max ? kernels::max_pool2d(in[0], cs.k, cs.s, cs.pad) : kernels::avg_pool2d(in[0], cs.k, cs.s, cs.pad);
        };
        // [2, 40, 2, 2] with 2x2 s2 gives a [2, 40, 1, 1] output: Contiguous, same bytes.
        EXPECT_TRUE(channels_last_matches_cpu(op, {rand(shape)}, dtype));
      }
    }
  }
}

TEST_F(CudaChannelsLast, MaxPoolTiesPickTheFirstMaximumLikeTheCpu) {
  Tensor x = Tensor::full({2, 5, 6, 6}, 1.0);  // every window is one big tie
  EXPECT_TRUE(channels_last_matches_cpu([](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 3, 2, 1); },
                                        {x}, F32));
}

TEST_F(CudaChannelsLast, GlobalAvgPoolForwardAndBackward) {
  for (DType dtype : {F32, F64, BF16}) {
    for (const Shape& shape : {Shape{5, 67, 7, 7}, Shape{3, 3, 11, 10}, Shape{4, 512, 4, 4}}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape_str(shape));
      // y is [N, C] (no format); dx comes back channels-last.
      EXPECT_TRUE(channels_last_matches_cpu([](const std::vector<Tensor>& in) { return kernels::global_avg_pool(in[0]); },
                                            {rand(shape)}, dtype));
    }
  }
}

// The NCHW kernels next to the NHWC ones on the same device: same values.
TEST_F(CudaChannelsLast, AgreesWithNchwOnTheDevice) {
  Tensor x = rand({5, 67, 7, 7}, -2.0, 3.0).to(F32).to(kCuda);
  Tensor x_cl = kernels::convert(x, F32, kCL);
  Tensor g = rand({67}, 0.5, 1.5).to(F32).to(kCuda), b = rand({67}).to(F32).to(kCuda);
  NoGradGuard no_grad;
  EXPECT_TRUE(testing::all_close(kernels::batch_norm(x_cl, g, b, Tensor(), Tensor(), true),
                                 kernels::batch_norm(x, g, b, Tensor(), Tensor(), true), kStrict, "batch_norm"));
  EXPECT_TRUE(testing::all_close(kernels::max_pool2d(x_cl, 3, 2, 1), kernels::max_pool2d(x, 3, 2, 1), Tolerance::exact(),
                                 "max_pool2d"));
  EXPECT_TRUE(testing::all_close(kernels::avg_pool2d(x_cl, 3, 2, 1), kernels::avg_pool2d(x, 3, 2, 1), kStrict,
                                 "avg_pool2d"));
  EXPECT_TRUE(testing::all_close(kernels::global_avg_pool(x_cl), kernels::global_avg_pool(x), kStrict, "global_avg_pool"));
}

}  // namespace
}  // namespace dp
