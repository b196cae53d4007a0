// GPU microbenchmarks of the CUDA kernels: convolutions at ResNet-18 (224², batch 32) and
// WRN-28-10 (32², batch 128) shapes, batch norm, GEMM. Times come from CUDA events around the
// launches (UseManualTime), TF32 on unless the name says "strict". Exits cleanly without a device.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "engine/cuda/allocator.h"
#include "engine/cuda/context.h"
#include "engine/device.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "kernels/ops.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"

namespace {

using namespace dp;

struct ConvShape {
  const char* name;
  int64_t n, c, h, k, r, stride, pad;
};

const std::vector<ConvShape> kConvShapes = {
    {"r18_stem_3to64_224_7x7s2", 32, 3, 224, 64, 7, 2, 3},
    {"r18_64to64_56", 32, 64, 56, 64, 3, 1, 1},
    {"r18_128to128_28", 32, 128, 28, 128, 3, 1, 1},
    {"r18_256to256_14", 32, 256, 14, 256, 3, 1, 1},
    {"r18_512to512_7", 32, 512, 7, 512, 3, 1, 1},
    {"wrn_16to160_32", 128, 16, 32, 160, 3, 1, 1},
    {"wrn_160to160_32", 128, 160, 32, 160, 3, 1, 1},
    {"wrn_320to320_16", 128, 320, 16, 320, 3, 1, 1},
    {"wrn_640to640_8", 128, 640, 8, 640, 3, 1, 1},
};

Tensor random_device(const Shape& shape, uint64_t stream) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  Rng rng(42, stream);
  for (float& e : v) e = static_cast<float>(rng.uniform(-1.0, 1.0));
  return Tensor::from_vector(v, shape, Device::cuda());
}

// Times `body` with CUDA events on the context stream; a few warm-up calls pick algorithms.
template <class Body>
void time_on_gpu(benchmark::State& state, Body&& body) {
  cuda::Context& ctx = cuda::context(0);
  for (int i = 0; i < 3; ++i) body();
  ctx.synchronize();
  cuda::Event start, stop;
  for (auto _ : state) {
    start.record(ctx.stream());
    body();
    stop.record(ctx.stream());
    state.SetIterationTime(cuda::Event::elapsed_ms(start, stop) / 1000.0);
  }
}

enum class ConvPass { Forward, BackwardData, BackwardWeight };

void conv_bench(benchmark::State& state, ConvPass pass, bool tf32) {
  const ConvShape& s = kConvShapes[static_cast<size_t>(state.range(0))];
  cuda::set_allow_tf32(tf32);
  kernels::Conv2dGeometry g{s.n, s.c, s.h, s.h, s.k, s.r, s.r, s.stride, s.pad, 0, 0};
  g.p = (g.h + 2 * g.pad - g.r) / g.stride + 1;
  g.q = (g.w + 2 * g.pad - g.s) / g.stride + 1;
  Tensor x = random_device({g.n, g.c, g.h, g.w}, 1), w = random_device({g.k, g.c, g.r, g.s}, 2);
  Tensor y = random_device({g.n, g.k, g.p, g.q}, 3), dx = Tensor::empty(x.shape(), DType::Float32, Device::cuda());
  Tensor dw = Tensor::empty(w.shape(), DType::Float32, Device::cuda()), none;
  time_on_gpu(state, [&] {
    switch (pass) {
      case ConvPass::Forward: kernels::cuda::conv2d_forward(x, w, none, y, g); break;
      case ConvPass::BackwardData: kernels::cuda::conv2d_backward_data(y, w, dx, g); break;
      case ConvPass::BackwardWeight: kernels::cuda::conv2d_backward_weight(x, y, dw, none, g); break;
    }
  });
  const double flops = 2.0 * g.n * g.k * g.p * g.q * g.c * g.r * g.s;
  state.counters["TFLOPS"] = benchmark::Counter(flops * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(s.name) + (tf32 ? "" : " strict"));
  cuda::set_allow_tf32(true);
}

void BM_ConvForward(benchmark::State& st) { conv_bench(st, ConvPass::Forward, true); }
void BM_ConvBackwardData(benchmark::State& st) { conv_bench(st, ConvPass::BackwardData, true); }
void BM_ConvBackwardWeight(benchmark::State& st) { conv_bench(st, ConvPass::BackwardWeight, true); }
void BM_ConvForwardStrict(benchmark::State& st) { conv_bench(st, ConvPass::Forward, false); }

const int kConvCount = static_cast<int>(kConvShapes.size());
BENCHMARK(BM_ConvForward)->DenseRange(0, kConvCount - 1)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ConvBackwardData)->DenseRange(0, kConvCount - 1)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ConvBackwardWeight)->DenseRange(0, kConvCount - 1)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ConvForwardStrict)->Arg(1)->Arg(6)->UseManualTime()->Unit(benchmark::kMicrosecond);

// bf16 convolutions (the bf16 training mode), all three passes in one timing, NCHW against
// channels-last (NHWC activations, KRSC filter), algorithms timed once per shape as in the
// training step. Args: shape index, channels-last (0/1).
void BM_ConvBf16Step(benchmark::State& state) {
  cuda::set_cudnn_benchmark(true);
  const ConvShape& s = kConvShapes[static_cast<size_t>(state.range(0))];
  const MemoryFormat format = state.range(1) ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
  kernels::Conv2dGeometry g{s.n, s.c, s.h, s.h, s.k, s.r, s.r, s.stride, s.pad, 0, 0};
  g.p = (g.h + 2 * g.pad - g.r) / g.stride + 1;
  g.q = (g.w + 2 * g.pad - g.s) / g.stride + 1;
  auto bf16 = [&](const Tensor& t) { return kernels::convert(t, DType::BFloat16, format); };
  Tensor x = bf16(random_device({g.n, g.c, g.h, g.w}, 1)), w = bf16(random_device({g.k, g.c, g.r, g.s}, 2));
  Tensor dy = bf16(random_device({g.n, g.k, g.p, g.q}, 3));
  Tensor y = Tensor::empty_like(dy), dx = Tensor::empty_like(x), dw = Tensor::empty_like(w), none;
  time_on_gpu(state, [&] {
    kernels::cuda::conv2d_forward(x, w, none, y, g);
    kernels::cuda::conv2d_backward_data(dy, w, dx, g);
    kernels::cuda::conv2d_backward_weight(x, dy, dw, none, g);
  });
  const double flops = 3 * 2.0 * g.n * g.k * g.p * g.q * g.c * g.r * g.s;
  state.counters["TFLOPS"] = benchmark::Counter(flops * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(s.name) + (state.range(1) ? " NHWC" : " NCHW"));
  cuda::set_cudnn_benchmark(false);
}
BENCHMARK(BM_ConvBf16Step)
    ->ArgsProduct({benchmark::CreateDenseRange(0, kConvCount - 1, 1), {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// ---- batch norm ----

const std::vector<Shape> kBnShapes = {{32, 64, 112, 112}, {32, 64, 56, 56}, {128, 160, 32, 32}, {128, 640, 8, 8}};

void bn_bench(benchmark::State& state, bool backward) {
  const Shape& s = kBnShapes[static_cast<size_t>(state.range(0))];
  const int64_t c = s[1];
  Tensor x = random_device(s, 4), dy = random_device(s, 5);
  Tensor y = Tensor::empty(s, DType::Float32, Device::cuda()), dx = Tensor::empty(s, DType::Float32, Device::cuda());
  Tensor gamma = Tensor::ones({c}, DType::Float32, Device::cuda()), beta = Tensor::zeros({c}, DType::Float32, Device::cuda());
  Tensor rm = Tensor::zeros({c}, DType::Float32, Device::cuda()), rv = Tensor::ones({c}, DType::Float32, Device::cuda());
  Tensor mean = Tensor::empty({c}, DType::Float32, Device::cuda()), invstd = Tensor::empty({c}, DType::Float32, Device::cuda());
  Tensor dgamma = Tensor::empty({c}, DType::Float32, Device::cuda()), dbeta = Tensor::empty({c}, DType::Float32, Device::cuda());
  kernels::cuda::batch_norm_forward_train(x, gamma, beta, 1e-5, 0.1, rm, rv, y, mean, invstd);
  time_on_gpu(state, [&] {
    if (backward)
      kernels::cuda::batch_norm_backward(x, dy, gamma, mean, invstd, dx, dgamma, dbeta);
    else
      kernels::cuda::batch_norm_forward_train(x, gamma, beta, 1e-5, 0.1, rm, rv, y, mean, invstd);
  });
  // Minimum traffic: forward reads x twice and writes y; backward reads x and dy twice, writes dx.
  const double bytes = static_cast<double>(x.nbytes()) * (backward ? 5 : 3);
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(shape_str(s));
}

void BM_BatchNormForwardTrain(benchmark::State& st) { bn_bench(st, false); }
void BM_BatchNormBackward(benchmark::State& st) { bn_bench(st, true); }
BENCHMARK(BM_BatchNormForwardTrain)->DenseRange(0, 3)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_BatchNormBackward)->DenseRange(0, 3)->UseManualTime()->Unit(benchmark::kMicrosecond);

// BN + ReLU, forward and backward, bf16 activations as in the bf16 training step: the two ops
// one after the other against the fused kernels, NCHW and channels-last.
// Args: shape index, channels-last (0/1), fused (0/1).
void BM_BatchNormReluBf16Step(benchmark::State& state) {
  const Shape& s = kBnShapes[static_cast<size_t>(state.range(0))];
  const MemoryFormat format = state.range(1) ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
  const bool fused = state.range(2) != 0;
  const int64_t c = s[1];
  Tensor x = kernels::convert(random_device(s, 4), DType::BFloat16, format);
  Tensor dy = kernels::convert(random_device(s, 5), DType::BFloat16, format);
  Tensor y = Tensor::empty_like(x), r = Tensor::empty_like(x), dr = Tensor::empty_like(x), dx = Tensor::empty_like(x);
  Tensor gamma = Tensor::ones({c}, DType::Float32, Device::cuda()), beta = Tensor::zeros({c}, DType::Float32, Device::cuda());
  Tensor rm = Tensor::zeros({c}, DType::Float32, Device::cuda()), rv = Tensor::ones({c}, DType::Float32, Device::cuda());
  Tensor mean = Tensor::empty({c}, DType::Float32, Device::cuda()), invstd = Tensor::empty({c}, DType::Float32, Device::cuda());
  Tensor dgamma = Tensor::empty({c}, DType::Float32, Device::cuda()), dbeta = Tensor::empty({c}, DType::Float32, Device::cuda());
  time_on_gpu(state, [&] {
    if (fused) {
      kernels::cuda::batch_norm_forward_train(x, gamma, beta, 1e-5, 0.1, rm, rv, y, mean, invstd, true);
      kernels::cuda::batch_norm_backward(x, dy, gamma, mean, invstd, dx, dgamma, dbeta, y);
    } else {
      kernels::cuda::batch_norm_forward_train(x, gamma, beta, 1e-5, 0.1, rm, rv, y, mean, invstd);
      kernels::cuda::relu_forward(y, r);
      kernels::cuda::relu_backward(r, dy, dr);
      kernels::cuda::batch_norm_backward(x, dr, gamma, mean, invstd, dx, dgamma, dbeta);
    }
  });
  state.SetLabel(shape_str(s) + (state.range(1) ? " NHWC" : " NCHW") + (fused ? " fused" : " bn,relu"));
}
BENCHMARK(BM_BatchNormReluBf16Step)
    ->ArgsProduct({{0, 1, 2, 3}, {0, 1}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// ---- GEMM ----

void BM_Gemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool tf32 = state.range(3) != 0;
  cuda::set_allow_tf32(tf32);
  Tensor a = random_device({m, k}, 6), b = random_device({k, n}, 7);
  Tensor c = Tensor::empty({m, n}, DType::Float32, Device::cuda());
  time_on_gpu(state, [&] { kernels::cuda::gemm(false, false, 1.0, a, b, 0.0, c); });
  state.counters["TFLOPS"] =
      benchmark::Counter(2.0 * m * n * k * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(tf32 ? "tf32" : "strict fp32");
  cuda::set_allow_tf32(true);
}
BENCHMARK(BM_Gemm)
    ->Args({4096, 4096, 4096, 1})
    ->Args({4096, 4096, 4096, 0})
    ->Args({128, 10, 640, 1})     // WRN classifier
    ->Args({32, 1000, 512, 1})    // ResNet-18 classifier
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  if (!dp::cuda_available()) {
    std::printf("no CUDA device on this machine: GPU benchmarks skipped\n");
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const cudaDeviceProp& p = dp::cuda::context(0).properties();
  std::printf("device: %s, %d SMs\n", p.name, p.multiProcessorCount);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  dp::cuda::AllocatorStats s = dp::cuda::memory_stats();
  std::printf("allocator: peak %.1f MiB in use, %.1f MiB reserved, %llu cache hits / %llu allocations\n",
              s.peak_allocated_bytes / 1048576.0, s.peak_reserved_bytes / 1048576.0,
              static_cast<unsigned long long>(s.cache_hits), static_cast<unsigned long long>(s.allocations));
  return 0;
}
