// Channels-last (NHWC) tensors: the memory layout itself, conversions, and every op that takes
// 4-D activations run on a channels-last input against the same op on NCHW input on the CPU.
// On the CPU the channels-last path runs the NCHW kernels between conversions, so results must
// be bit-identical; the CUDA case runs cuDNN/own NHWC kernels and compares within TF32 bounds.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "engine/autocast.h"
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

TEST(ChannelsLast, MemoryIsNhwc) {
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

TEST(ChannelsLast, RoundTripsEveryDtypeAndConvertsDtypeOnTheWay) {
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

TEST(ChannelsLast, CoincidingLayoutsStayContiguous) {
  // C == 1 or H·W == 1: both formats order the elements alike, so there is one flag for them.
  EXPECT_FALSE(Tensor::empty({4, 1, 5, 5}, DType::Float32, Device::cpu(), kCL).is_channels_last());
  EXPECT_FALSE(Tensor::empty({4, 8, 1, 1}, DType::Float32, Device::cpu(), kCL).is_channels_last());
  EXPECT_TRUE(Tensor::empty({4, 8, 2, 1}, DType::Float32, Device::cpu(), kCL).is_channels_last());
  EXPECT_THROW(Tensor::empty({4, 8, 2}, DType::Float32, Device::cpu(), kCL), Error);
  EXPECT_THROW(kernels::to_memory_format(Tensor::zeros({4, 8}), kCL), Error);
}

TEST(ChannelsLast, ViewsCopiesAndReshape) {
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

TEST(ChannelsLast, ConversionIsDifferentiable) {
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

TEST(ChannelsLast, GradientsKeepTheFormatOfTheirTensor) {
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

// ---- every op on channels-last input vs NCHW input on the CPU ----

struct OpRun {
  Tensor out;
  std::vector<Tensor> grads;
};

// Runs `op` on float32 copies of `inputs` on `device`; the inputs marked in `channels_last` are
// converted before they become leaves (so their gradients are checked in that format too).
OpRun run(const testing::OpFn& op, const std::vector<Tensor>& inputs, Device device,
          const std::vector<bool>& channels_last) {
  std::vector<Tensor> leaves;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      leaves.emplace_back();
      continue;
    }
    Tensor leaf = inputs[i].to(DType::Float32).to(device);
    if (i < channels_last.size() && channels_last[i]) leaf = kernels::convert(leaf, DType::Float32, kCL);
    leaves.push_back(leaf.set_requires_grad(true));
  }
  OpRun r;
  r.out = op(leaves);
  Rng rng(5, 5);
  Tensor seed = random_tensor(r.out.shape(), rng, -1, 1, DType::Float32).to(device);
  r.out.backward(seed);
  for (Tensor& leaf : leaves) r.grads.push_back(leaf.defined() ? leaf.grad() : Tensor());
  return r;
}

class ChannelsLastOps : public testing::DeviceTest {
 protected:
  // The op on channels-last inputs (on device()) against the op on NCHW inputs (CPU).
  void check(const std::string& name, const testing::OpFn& op, const std::vector<Tensor>& inputs,
             const std::vector<bool>& channels_last, bool output_channels_last = true) {
    SCOPED_TRACE(name);
    OpRun ref = run(op, inputs, Device::cpu(), {});
    OpRun got = run(op, inputs, device(), channels_last);
    const testing::Tolerance tol = on_cuda() ? testing::Tolerance::tf32() : testing::Tolerance::exact();
    EXPECT_EQ(got.out.is_channels_last(), output_channels_last) << got.out.str();
    EXPECT_TRUE(testing::all_close(got.out, ref.out, tol, "output"));
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i].defined()) continue;
      const bool cl = i < channels_last.size() && channels_last[i];
      ASSERT_TRUE(got.grads[i].defined()) << "input " << i;
      EXPECT_EQ(got.grads[i].is_channels_last(), cl) << "gradient of input " << i << ": " << got.grads[i].str();
      EXPECT_TRUE(testing::all_close(got.grads[i], ref.grads[i], tol, "gradient of input " + std::to_string(i)));
    }
  }
};

TEST_P(ChannelsLastOps, Convolutions) {
  Rng rng(21, 0);
  struct Case {
    int64_t n, c, h, w, k, r, stride, pad;
    bool bias;
  };
  for (const Case& cc : {Case{2, 3, 9, 7, 8, 3, 1, 1, true}, Case{3, 5, 8, 8, 6, 3, 2, 1, false},
                         Case{2, 6, 6, 6, 4, 1, 2, 0, true}, Case{1, 4, 7, 7, 5, 7, 2, 3, false}}) {
    Tensor x = random_tensor({cc.n, cc.c, cc.h, cc.w}, rng);
    Tensor w = random_tensor({cc.k, cc.c, cc.r, cc.r}, rng);
    Tensor b = cc.bias ? random_tensor({cc.k}, rng) : Tensor();
    check(fmt::format("conv {}x{} stride {} bias {}", cc.r, cc.r, cc.stride, cc.bias),
          [&](const std::vector<Tensor>& in) { return kernels::conv2d(in[0], in[1], in[2], cc.stride, cc.pad); },
          {x, w, b}, {true, false, false});
  }
}

TEST_P(ChannelsLastOps, BatchNormTrainAndEval) {
  Rng rng(22, 0);
  for (int64_t c : {3, 67}) {
    Tensor x = random_tensor({5, c, 7, 7}, rng, -2, 3);
    Tensor gamma = random_tensor({c}, rng, 0.5, 1.5), beta = random_tensor({c}, rng);
    Tensor rm = random_tensor({c}, rng, -0.1, 0.1, DType::Float32), rv = random_tensor({c}, rng, 0.5, 2, DType::Float32);
    for (bool training : {true, false}) {
      // Each run gets its own copy of the running statistics: [0] the reference, [1] channels-last.
      std::vector<std::pair<Tensor, Tensor>> stats;
      auto op = [&](const std::vector<Tensor>& in) {
        stats.emplace_back(rm.to(in[0].device()).clone(), rv.to(in[0].device()).clone());
        return kernels::batch_norm(in[0], in[1], in[2], stats.back().first, stats.back().second, training);
      };
      check(fmt::format("batch_norm C={} {}", c, training ? "train" : "eval"), op, {x, gamma, beta},
            {true, false, false});
      ASSERT_EQ(stats.size(), 2u);
      const testing::Tolerance tol = on_cuda() ? testing::Tolerance::fp32() : testing::Tolerance::exact();
      EXPECT_TRUE(testing::all_close(stats[1].first, stats[0].first, tol, "running_mean"));
      EXPECT_TRUE(testing::all_close(stats[1].second, stats[0].second, tol, "running_var"));
    }
  }
}

TEST_P(ChannelsLastOps, PoolingReluAddDropout) {
  Rng rng(23, 0);
  Tensor x = random_tensor({5, 67, 7, 7}, rng);
  Tensor other = random_tensor({5, 67, 7, 7}, rng);
  check("max_pool 3x3 s2 p1", [](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 3, 2, 1); }, {x},
        {true});
  check("max_pool 2x2 s2", [](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 2, 2, 0); }, {x},
        {true});
  check("avg_pool 3x3 s2 p1", [](const std::vector<Tensor>& in) { return kernels::avg_pool2d(in[0], 3, 2, 1); }, {x},
        {true});
  check("global_avg_pool", [](const std::vector<Tensor>& in) { return kernels::global_avg_pool(in[0]); }, {x}, {true},
        /*output_channels_last=*/false);
  check("relu", [](const std::vector<Tensor>& in) { return kernels::relu(in[0]); }, {x}, {true});
  check("add, both channels-last", [](const std::vector<Tensor>& in) { return kernels::add(in[0], in[1]); }, {x, other},
        {true, true});
  check("add, mixed formats", [](const std::vector<Tensor>& in) { return kernels::add(in[0], in[1]); }, {x, other},
        {true, false});
  check("dropout (same mask as NCHW)",
        [](const std::vector<Tensor>& in) { return kernels::dropout(in[0], 0.3, true, 99, 4); }, {x}, {true});
  check("flatten", [](const std::vector<Tensor>& in) { return kernels::flatten(in[0]); }, {x}, {true}, false);
}

DP_INSTANTIATE_DEVICE_TEST(ChannelsLastOps);

// bf16 convolution on channels-last input under autocast (CUDA only): the KRSC bf16 copy of the
// weight is cached, and its gradient comes back to the float32 NCHW parameter.
TEST(ChannelsLastBf16, ConvUnderAutocastMatchesCpuFloat32) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build or on this machine";
  Rng rng(24, 0);
  Tensor x = random_tensor({4, 16, 10, 10}, rng, -1, 1, DType::Float32);
  Tensor w = random_tensor({32, 16, 3, 3}, rng, -0.2, 0.2, DType::Float32);
  Tensor b = random_tensor({32}, rng, -1, 1, DType::Float32);
  Tensor seed = random_tensor({4, 32, 10, 10}, rng, -1, 1, DType::Float32);
  // Reference: CPU float32, NCHW.
  Tensor wr = w.clone().set_requires_grad(true), br = b.clone().set_requires_grad(true);
  Tensor yr = kernels::conv2d(x, wr, br, 1, 1);
  yr.backward(seed);
  // CUDA bf16, channels-last.
  Device cuda = Device::cuda();
  Tensor wg = w.to(cuda).set_requires_grad(true), bg = b.to(cuda).set_requires_grad(true);
  Tensor xg = kernels::convert(x.to(cuda), DType::Float32, kCL);
  Tensor yg;
  {
    AutocastGuard bf16(DType::BFloat16);
    yg = kernels::conv2d(xg, wg, bg, 1, 1);
  }
  EXPECT_EQ(yg.dtype(), DType::BFloat16);
  EXPECT_TRUE(yg.is_channels_last());
  yg.backward(kernels::convert(seed.to(cuda), DType::BFloat16, kCL));
  EXPECT_EQ(wg.grad().dtype(), DType::Float32);
  EXPECT_FALSE(wg.grad().is_channels_last());
  EXPECT_TRUE(testing::all_close(yg, yr, testing::Tolerance::bf16(), "output"));
  EXPECT_TRUE(testing::all_close(wg.grad(), wr.grad(), testing::Tolerance::bf16(), "weight gradient"));
  EXPECT_TRUE(testing::all_close(bg.grad(), br.grad(), testing::Tolerance::bf16(), "bias gradient"));
}

}  // namespace
}  // namespace dp
