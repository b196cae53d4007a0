// Every op on CUDA against the CPU result on random float32 inputs: outputs and all input
// gradients (tests/common/devices.h runs the op and its backward on both devices).
//
// Tolerances (element-wise, see testing::all_close): strict float32 (TF32 off, and our own
// kernels): 1e-5 relative to max(|expected|, 0.1·max|expected|), since CPU and GPU sum in
// different orders and long sums make near-zero elements carry the rounding of the large ones;
// TF32 tensor cores (10-bit mantissa): 2e-3 of the tensor's largest magnitude; dropout, casts,
// fills and max-pool ties: bit-identical.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <vector>

#include "engine/autograd.h"
#include "engine/cuda/context.h"
#include "engine/rng.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "kernels/sync_batch_norm.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

namespace dp {
namespace {

using testing::matches_cpu;
using testing::random_tensor;
using testing::Tolerance;

const Device kCuda = Device::cuda();
const Tolerance kStrict{1e-5, 1e-6, 0.1};
const Tolerance kTf32{2e-3, 1e-4, 1.0};

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device on this machine: CUDA op tests skipped";
    saved_tf32_ = cuda::allow_tf32();
  }
  void TearDown() override {
    if (cuda_available()) cuda::set_allow_tf32(saved_tf32_);
  }
  Rng rng_{2024, 5};
  Tensor rand(const Shape& s, double lo = -1.0, double hi = 1.0) { return random_tensor(s, rng_, lo, hi); }

 private:
  bool saved_tf32_ = true;
};

// Runs `body` with TF32 off (strict tolerance) and on (TF32 tolerance).
template <class Body>
void both_math_modes(Body&& body) {
  for (bool tf32 : {false, true}) {
    SCOPED_TRACE(tf32 ? "TF32 on" : "strict float32");
    cuda::set_allow_tf32(tf32);
    body(tf32 ? kTf32 : kStrict);
  }
}

// ---- elementwise and reductions ----

TEST_F(CudaOps, ElementwiseOpsAndReductions) {
  Tensor a = rand({3, 1001}), b = rand({3, 1001});
  EXPECT_TRUE(matches_cpu(kCuda, [](const std::vector<Tensor>& in) { return kernels::add(in[0], in[1]); }, {a, b},
                          kStrict));
  EXPECT_TRUE(matches_cpu(kCuda, [](const std::vector<Tensor>& in) { return kernels::mul(in[0], -2.5); }, {a},
                          kStrict));
  EXPECT_TRUE(matches_cpu(kCuda, [](const std::vector<Tensor>& in) { return kernels::relu(in[0]); }, {a},
                          kStrict));
  Tensor big = rand({1 << 20});
  EXPECT_TRUE(matches_cpu(kCuda, [](const std::vector<Tensor>& in) { return kernels::sum(in[0]); }, {big},
                          kStrict));
  EXPECT_TRUE(matches_cpu(kCuda, [](const std::vector<Tensor>& in) { return kernels::mean(in[0]); }, {big},
                          kStrict));
  Tensor y = a.to(DType::Float32).to(kCuda);
  kernels::add_(y, b.to(DType::Float32).to(kCuda), 0.5);
  Tensor y_cpu = a.to(DType::Float32);
  kernels::add_(y_cpu, b.to(DType::Float32), 0.5);
  EXPECT_TRUE(testing::all_close(y, y_cpu, kStrict, "add_"));
}

TEST_F(CudaOps, SumIsDeterministic) {
  Tensor x = rand({3, 777777}).to(DType::Float32).to(kCuda);
  double first = kernels::sum(x).item();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(kernels::sum(x).item(), first);
}

TEST_F(CudaOps, FillAndCastAreExactForEveryDtype) {
  const std::vector<DType> types = {DType::Float32, DType::Float64, DType::BFloat16,
                                    DType::Int32,   DType::Int64,   DType::UInt8};
  Tensor src = rand({257}, 0.0, 200.0);
  for (DType from : types) {
    Tensor x_cpu = src.to(from);
    Tensor x_gpu = x_cpu.to(kCuda);
    for (DType to : types) {
      SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + dtype_name(to));
      Tensor want = x_cpu.to(to);
      Tensor got = x_gpu.to(to).to(Device::cpu());
      ASSERT_EQ(got.dtype(), to);
      EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()), 0);
    }
    Tensor f = Tensor::full({33}, 3.75, from, kCuda).to(Device::cpu());
    Tensor f_cpu = Tensor::full({33}, 3.75, from);
    EXPECT_EQ(std::memcmp(f.raw_data(), f_cpu.raw_data(), f.nbytes()), 0) << dtype_name(from);
  }
}

// ---- GEMM and linear ----

TEST_F(CudaOps, GemmAllTransposesBothMathModes) {
  Tensor a = rand({37, 53}), b = rand({53, 29}), c0 = rand({37, 29});
  both_math_modes([&](Tolerance tol) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        SCOPED_TRACE(std::string("trans_a=") + (ta ? "1" : "0") + " trans_b=" + (tb ? "1" : "0"));
        // Lay out A and B so that op(A) = a and op(B) = b.
        Tensor A = a.to(DType::Float32), B = b.to(DType::Float32);
        if (ta) {
          std::vector<float> t(37 * 53), v = a.to_float_vector();
          for (int i = 0; i < 37; ++i)
            for (int k = 0; k < 53; ++k) t[k * 37 + i] = v[i * 53 + k];
          A = Tensor::from_vector(t, {53, 37});
        }
        if (tb) {
          std::vector<float> t(53 * 29), v = b.to_float_vector();
          for (int k = 0; k < 53; ++k)
            for (int j = 0; j < 29; ++j) t[j * 53 + k] = v[k * 29 + j];
          B = Tensor::from_vector(t, {29, 53});
        }
        Tensor c_cpu = c0.to(DType::Float32), c_gpu = c_cpu.to(kCuda);
        kernels::cpu::gemm(ta, tb, 0.75, A, B, -0.5, c_cpu);
        Tensor Ag = A.to(kCuda), Bg = B.to(kCuda);
        kernels::cuda::gemm(ta, tb, 0.75, Ag, Bg, -0.5, c_gpu);
        EXPECT_TRUE(testing::all_close(c_gpu, c_cpu, tol, "gemm"));
      }
  });
}

TEST_F(CudaOps, MatmulAndLinearWithGradients) {
  both_math_modes([&](Tolerance tol) {
    EXPECT_TRUE(matches_cpu(kCuda, [](const std::vector<Tensor>& in) { return kernels::matmul(in[0], in[1]); },
                            {rand({64, 96}), rand({96, 33})}, tol));
    EXPECT_TRUE(matches_cpu(kCuda,
                            [](const std::vector<Tensor>& in) { return kernels::linear(in[0], in[1], in[2]); },
                            {rand({128, 640}), rand({10, 640}), rand({10})}, tol));
    EXPECT_TRUE(matches_cpu(kCuda,
                            [](const std::vector<Tensor>& in) { return kernels::linear(in[0], in[1], Tensor()); },
                            {rand({5, 7}), rand({300, 7})}, tol));
  });
}

TEST_F(CudaOps, Float64GemmIsSupported) {
  Tensor a = rand({20, 30}), b = rand({30, 10});
  Tensor got = kernels::matmul(a.to(kCuda), b.to(kCuda));
  EXPECT_TRUE(testing::all_close(got, kernels::matmul(a, b), Tolerance{1e-12, 1e-13}, "float64 matmul"));
}

// ---- convolution ----

struct ConvCase {
  int64_t n, c, h, w, k, r, stride, pad;
  bool bias;
};

TEST_F(CudaOps, Conv2dForwardAndBackwardBothMathModes) {
  const std::vector<ConvCase> cases = {
      {2, 3, 9, 7, 4, 3, 1, 1, true},     // 3x3 same, non-square
      {2, 8, 8, 8, 16, 3, 2, 1, false},   // strided (downsampling block)
      {3, 16, 6, 6, 8, 1, 1, 0, true},    // pointwise
      {2, 16, 8, 8, 32, 1, 2, 0, false},  // strided 1x1 shortcut
      {2, 3, 32, 32, 8, 7, 2, 3, false},  // ResNet stem
      {4, 32, 7, 7, 32, 3, 1, 1, false},  // deep, small spatial
  };
  both_math_modes([&](Tolerance tol) {
    for (const ConvCase& cc : cases) {
      SCOPED_TRACE("case n" + std::to_string(cc.n) + " c" + std::to_string(cc.c) + " k" + std::to_string(cc.k) +
                   " r" + std::to_string(cc.r) + " s" + std::to_string(cc.stride));
      Tensor x = rand({cc.n, cc.c, cc.h, cc.w}), w = rand({cc.k, cc.c, cc.r, cc.r}, -0.3, 0.3);
      Tensor b = cc.bias ? rand({cc.k}) : Tensor();
      const int64_t stride = cc.stride, pad = cc.pad;
      EXPECT_TRUE(matches_cpu(
          kCuda, [=](const std::vector<Tensor>& in) { return kernels::conv2d(in[0], in[1], in[2], stride, pad); },
          {x, w, b}, tol));
    }
  });
}

TEST_F(CudaOps, Conv2dDeterministicModeAndBenchmarkModeAgree) {
  Tensor x = rand({4, 16, 12, 12}), w = rand({16, 16, 3, 3}, -0.3, 0.3);
  auto run = [&] {
    return kernels::conv2d(x.to(DType::Float32).to(kCuda), w.to(DType::Float32).to(kCuda), Tensor(), 1, 1);
  };
  cuda::set_allow_tf32(false);
  Tensor ref = run();
  cuda::set_deterministic(true);
  Tensor det = run();
  cuda::set_deterministic(false);
  cuda::set_cudnn_benchmark(true);
  Tensor bench = run();
  cuda::set_cudnn_benchmark(false);
  EXPECT_TRUE(testing::all_close(det, ref, kStrict, "deterministic"));
  EXPECT_TRUE(testing::all_close(bench, ref, kStrict, "benchmark"));
}

// ---- batch normalisation ----

TEST_F(CudaOps, BatchNormTrainingForwardBackwardAndRunningStats) {
  for (const Shape& shape : {Shape{8, 5, 7, 9}, Shape{64, 12}, Shape{2, 3, 1, 1}}) {
    SCOPED_TRACE(shape_str(shape));
    const int64_t c = shape[1];
    Tensor x = rand(shape, -2.0, 3.0), gamma = rand({c}, 0.5, 1.5), beta = rand({c});
    // Gradients of x, gamma and beta.
    EXPECT_TRUE(matches_cpu(
        kCuda,
        [](const std::vector<Tensor>& in) {
          return kernels::batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), true, 0.1, 1e-5);
        },
        {x, gamma, beta}, kStrict));
    // Running statistics (unbiased variance, PyTorch's momentum), two steps.
    Tensor rm_cpu = rand({c}).to(DType::Float32), rv_cpu = rand({c}, 0.5, 2.0).to(DType::Float32);
    Tensor rm_gpu = rm_cpu.to(kCuda), rv_gpu = rv_cpu.to(kCuda);
    Tensor xf = x.to(DType::Float32), gf = gamma.to(DType::Float32), bf = beta.to(DType::Float32);
    for (int step = 0; step < 2; ++step) {
      NoGradGuard no_grad;
      Tensor y_cpu = kernels::batch_norm(xf, gf, bf, rm_cpu, rv_cpu, true, 0.3, 1e-5);
      Tensor y_gpu = kernels::batch_norm(xf.to(kCuda), gf.to(kCuda), bf.to(kCuda), rm_gpu, rv_gpu, true, 0.3, 1e-5);
      EXPECT_TRUE(testing::all_close(y_gpu, y_cpu, kStrict, "y"));
    }
    EXPECT_TRUE(testing::all_close(rm_gpu, rm_cpu, kStrict, "running_mean"));
    EXPECT_TRUE(testing::all_close(rv_gpu, rv_cpu, kStrict, "running_var"));
  }
}

TEST_F(CudaOps, BatchNormEvalForwardAndBackward) {
  Tensor x = rand({6, 4, 5, 5}), gamma = rand({4}, 0.5, 1.5), beta = rand({4});
  Tensor rm = rand({4}).to(DType::Float32), rv = rand({4}, 0.5, 2.0).to(DType::Float32);
  EXPECT_TRUE(matches_cpu(
      kCuda,
      [&](const std::vector<Tensor>& in) {
        return kernels::batch_norm(in[0], in[1], in[2], rm.to(in[0].device()), rv.to(in[0].device()), false, 0.1,
                               1e-5);
      },
      {x, gamma, beta}, kStrict));
}

TEST_F(CudaOps, BatchNormIsDeterministic) {
  Tensor x = rand({32, 16, 14, 14}).to(DType::Float32).to(kCuda);
  Tensor g = Tensor::ones({16}, DType::Float32, kCuda), b = Tensor::zeros({16}, DType::Float32, kCuda);
  std::vector<float> first = kernels::batch_norm(x, g, b, Tensor(), Tensor(), true).to_float_vector();
  EXPECT_EQ(kernels::batch_norm(x, g, b, Tensor(), Tensor(), true).to_float_vector(), first);
}

TEST_F(CudaOps, SyncBatchNormPhasesMatchTheCpu) {
  // Synchronised BN's kernels (moment sums, forward from sums, gradient sums, backward from sums)
  // with a stand-in for the ranks: two ranks holding the same batch (the "all-reduce" doubles the
  // sums; this rank's share is 1/2), so every scale of the phases is exercised. NCHW and
  // channels-last, with and without the fused ReLU; outputs and gradients against the CPU.
  kernels::BatchNormSync sync;
  sync.all_reduce_sum = [](Tensor& t) { t.copy_from(kernels::mul(t, 2.0)); };
  sync.local_weight = 0.5;
  for (bool relu : {false, true})
    for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
      SCOPED_TRACE(fmt::format("relu {} channels-last {}", relu, format == MemoryFormat::ChannelsLast));
      Tensor x = rand({6, 5, 7, 9}, -2.0, 3.0), gamma = rand({5}, 0.5, 1.5), beta = rand({5});
      EXPECT_TRUE(matches_cpu(
          kCuda,
          [&](const std::vector<Tensor>& in) {
            return kernels::sync_batch_norm(kernels::to_memory_format(in[0], format), in[1], in[2], Tensor(), Tensor(), 0.1,
                                        1e-5, relu, sync);
          },
          {x, gamma, beta}, kStrict));
    }
}

// ---- pooling ----

TEST_F(CudaOps, PoolingForwardAndBackward) {
  Tensor x = rand({3, 4, 11, 10});
  EXPECT_TRUE(matches_cpu(kCuda, [](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 3, 2, 1); },
                          {x}, kStrict));
  EXPECT_TRUE(matches_cpu(kCuda, [](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 2, 2, 0); },
                          {x}, kStrict));
  EXPECT_TRUE(matches_cpu(kCuda, [](const std::vector<Tensor>& in) { return kernels::avg_pool2d(in[0], 3, 2, 1); },
                          {x}, kStrict));
  EXPECT_TRUE(matches_cpu(kCuda, [](const std::vector<Tensor>& in) { return kernels::avg_pool2d(in[0], 2, 1, 0); },
                          {x}, kStrict));
  EXPECT_TRUE(matches_cpu(kCuda, [](const std::vector<Tensor>& in) { return kernels::global_avg_pool(in[0]); },
                          {rand({5, 7, 8, 8})}, kStrict));
}

TEST_F(CudaOps, MaxPoolTiesPickTheFirstMaximumLikeTheCpu) {
  Tensor x = Tensor::full({1, 2, 6, 6}, 1.0);  // every window is one big tie
  EXPECT_TRUE(matches_cpu(kCuda, [](const std::vector<Tensor>& in) { return kernels::max_pool2d(in[0], 3, 2, 1); },
                          {x}, Tolerance::exact()));
}

// ---- softmax cross-entropy ----

TEST_F(CudaOps, CrossEntropyForwardAndBackward) {
  for (auto [b, c] : {std::pair<int64_t, int64_t>{33, 10}, {17, 1000}, {1, 2}, {300, 100}}) {
    SCOPED_TRACE(std::to_string(b) + "x" + std::to_string(c));
    std::vector<int64_t> labels(static_cast<size_t>(b));
    for (auto& l : labels) l = static_cast<int64_t>(rng_.below(static_cast<uint64_t>(c)));
    Tensor y = Tensor::from_vector(labels, {b});
    EXPECT_TRUE(matches_cpu(
        kCuda, [&](const std::vector<Tensor>& in) { return kernels::cross_entropy(in[0], y.to(in[0].device())); },
        {rand({b, c}, -8.0, 8.0)}, kStrict));
  }
}

TEST_F(CudaOps, CrossEntropyOutOfRangeLabelGivesNanOnCuda) {
  Tensor z = Tensor::zeros({2, 3}, DType::Float32, kCuda);
  Tensor y = Tensor::from_vector(std::vector<int64_t>{0, 7}, {2}, kCuda);
  EXPECT_TRUE(std::isnan(kernels::cross_entropy(z, y).item()));
}

// ---- dropout ----

TEST_F(CudaOps, DropoutMaskIsBitIdenticalToTheCpu) {
  for (double p : {0.0, 0.1, 0.5, 0.9}) {
    SCOPED_TRACE("p=" + std::to_string(p));
    EXPECT_TRUE(matches_cpu(
        kCuda, [p](const std::vector<Tensor>& in) { return kernels::dropout(in[0], p, true, 1234, 99); },
        {rand({3, 1027})}, Tolerance::exact()));
  }
}

}  // namespace
}  // namespace dp
