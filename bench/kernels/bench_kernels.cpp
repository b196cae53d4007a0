// CPU GEMM and convolution microbenchmarks at WideResNet's CIFAR layer shapes (batch 128) and
// ResNet-18's ImageNet ones (batch 32).
//
//   build-ops/bench/kernels/bench_kernels --benchmark_min_time=0.05 --benchmark_filter=Conv
//
// The GFLOP/s counter counts 2·N·K·C·R·S·P·Q flops per conv pass (forward, backward-data and
// backward-weight each do the same work) and 2·M·N·K per GEMM.
#include <benchmark/benchmark.h>

#include "engine/autograd.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/winograd_gemm.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"

namespace {

using dp::Tensor;

Tensor random_tensor(const dp::Shape& shape, uint64_t stream) {
  dp::Rng rng(2024, stream);
  std::vector<float> v(static_cast<size_t>(dp::shape_numel(shape)));
  for (float& e : v) e = static_cast<float>(rng.uniform(-1.0, 1.0));
  return Tensor::from_vector(v, shape);
}

void set_gflops(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iter * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

// Args: N, C, H(=W), K, R(=S), stride.
enum class Pass { Forward, BackwardData, BackwardWeight };

template <Pass pass>
void BM_Conv(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1), h = state.range(2), k = state.range(3),
                r = state.range(4), stride = state.range(5), pad = r / 2;
  const dp::kernels::Conv2dGeometry g = dp::kernels::Conv2dGeometry::make({n, c, h, h}, {k, c, r, r}, stride, pad);
  Tensor x = random_tensor({n, c, h, h}, 1), w = random_tensor({k, c, r, r}, 2);
  Tensor dy = random_tensor({n, k, g.p, g.q}, 3);
  Tensor y = Tensor::empty({n, k, g.p, g.q}), dx = Tensor::empty({n, c, h, h});
  Tensor dw = Tensor::empty({k, c, r, r}), db = Tensor::empty({k});
  for (auto _ : state) {
    if constexpr (pass == Pass::Forward) dp::kernels::cpu::conv2d_forward(x, w, Tensor(), y, g);
    if constexpr (pass == Pass::BackwardData) dp::kernels::cpu::conv2d_backward_data(dy, w, dx, g);
    if constexpr (pass == Pass::BackwardWeight) dp::kernels::cpu::conv2d_backward_weight(x, dy, dw, db, g);
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * n * k * c * r * r * g.p * g.q);
}

void WrnShapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "K", "R", "stride"});
  // WRN-16-4 (widths 64/128/256) at batch 128.
  b->Args({128, 16, 32, 64, 3, 1});    // group 1, first conv
  b->Args({128, 16, 32, 64, 1, 1});    // group 1 shortcut (pointwise)
  b->Args({128, 64, 32, 64, 3, 1});    // group 1
  b->Args({128, 64, 32, 128, 3, 2});   // group 2, first conv (strided)
  b->Args({128, 64, 32, 128, 1, 2});   // group 2 shortcut
  b->Args({128, 128, 16, 128, 3, 1});  // group 2
  b->Args({128, 128, 16, 256, 3, 2});  // group 3, first conv
  b->Args({128, 128, 16, 256, 1, 2});  // group 3 shortcut
  b->Args({128, 256, 8, 256, 3, 1});   // group 3
  // WRN-28-10 (widths 160/320/640) at batch 128: the widest layer of each group.
  b->Args({128, 160, 32, 160, 3, 1});
  b->Args({128, 320, 16, 320, 3, 1});
  b->Args({128, 640, 8, 640, 3, 1});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

// ResNet-18's 3x3 stride-1 layers at batch 32, 224 px (Winograd on the CPU), and its stem.
void ResNetShapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "K", "R", "stride"});
  b->Args({32, 64, 56, 64, 3, 1});
  b->Args({32, 128, 28, 128, 3, 1});
  b->Args({32, 256, 14, 256, 3, 1});
  b->Args({32, 512, 7, 512, 3, 1});
  b->Args({32, 3, 224, 64, 7, 2});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_Conv<Pass::Forward>)->Name("ConvForward")->Apply(WrnShapes)->Apply(ResNetShapes);
BENCHMARK(BM_Conv<Pass::BackwardData>)->Name("ConvBackwardData")->Apply(WrnShapes)->Apply(ResNetShapes);
BENCHMARK(BM_Conv<Pass::BackwardWeight>)->Name("ConvBackwardWeight")->Apply(WrnShapes)->Apply(ResNetShapes);

// Args: M, N, K — square sizes and the classifier of WRN-16-4 (batch 128, 256 -> 10).
void BM_Gemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  Tensor a = random_tensor({m, k}, 4), b = random_tensor({k, n}, 5), c = Tensor::empty({m, n});
  for (auto _ : state) {
    dp::kernels::cpu::gemm(false, false, 1.0, a, b, 0.0, c);
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * m * n * k);
}
BENCHMARK(BM_Gemm)
    ->ArgNames({"M", "N", "K"})
    ->Args({256, 256, 256})
    ->Args({1024, 1024, 1024})
    ->Args({128, 10, 256})
    ->Args({256, 1024, 2304})
    ->UseRealTime();

// One Winograd-domain product [K×C]·[C×tiles] as the CPU convolutions run it (a block of 512 or
// 64 tiles): our micro-kernel (kernels/cpu/winograd_gemm.h, B read in place) against OpenBLAS
// (which packs both operands and zeroes C per call), side by side.
template <bool ours>
void BM_WinogradProduct(benchmark::State& state) {
  const int64_t k = state.range(0), c = state.range(1), tiles = state.range(2);
  Tensor u = random_tensor({k, c}, 8), v = random_tensor({c, tiles}, 9), m = Tensor::empty({k, tiles});
  for (auto _ : state) {
    if constexpr (ours) {
      dp::kernels::cpu::winograd::gemm_rows(u.data<float>(), c, v.data<float>(), tiles, m.data<float>(), tiles, k,
                                            tiles, c);
    } else {
      dp::kernels::cpu::gemm(false, false, 1.0, u, v, 0.0, m);
    }
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * k * c * tiles);
}
void WinogradProducts(benchmark::internal::Benchmark* b) {
  b->ArgNames({"K", "C", "tiles"})->Args({64, 64, 512})->Args({128, 128, 448})->Args({256, 256, 192});
  b->Args({512, 512, 64})->UseRealTime();
}
BENCHMARK(BM_WinogradProduct<true>)->Name("WinogradProductOurs")->Apply(WinogradProducts);
BENCHMARK(BM_WinogradProduct<false>)->Name("WinogradProductOpenBLAS")->Apply(WinogradProducts);

// Batch norm (training forward + backward) on a WRN activation; reports GB/s of the passes
// over the activation (forward reads x twice and writes y; backward reads x and dy twice, writes dx).
void BM_BatchNormTrain(benchmark::State& state) {
  const int64_t n = 128, c = state.range(0), h = state.range(1);
  Tensor x = random_tensor({n, c, h, h}, 6), dy = random_tensor({n, c, h, h}, 7);
  Tensor gamma = Tensor::ones({c}), beta = Tensor::zeros({c}), rm = Tensor::zeros({c}), rv = Tensor::ones({c});
  Tensor y = Tensor::empty(x.shape()), dx = Tensor::empty(x.shape()), mean = Tensor::empty({c});
  Tensor invstd = Tensor::empty({c}), dg = Tensor::empty({c}), db = Tensor::empty({c});
  for (auto _ : state) {
    dp::kernels::cpu::batch_norm_forward_train(x, gamma, beta, 1e-5, 0.1, rm, rv, y, mean, invstd);
    dp::kernels::cpu::batch_norm_backward(x, dy, gamma, mean, invstd, dx, dg, db);
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = benchmark::Counter(8.0 * static_cast<double>(x.nbytes()) *
                                                  static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_BatchNormTrain)->ArgNames({"C", "H"})->Args({64, 32})->Args({256, 8})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

// One WRN basic block in training mode through the autograd ops: bn-relu-conv-bn-relu-conv +
// identity, forward and backward, batch 128 (the unit the whole net is made of).
void BM_WrnBlockStep(benchmark::State& state) {
  const int64_t n = 128, c = state.range(0), h = state.range(1);
  dp::Rng rng(9, 9);
  Tensor x = random_tensor({n, c, h, h}, 8);
  auto param = [&](const dp::Shape& s, uint64_t stream) { return random_tensor(s, stream).set_requires_grad(true); };
  Tensor w1 = param({c, c, 3, 3}, 10), w2 = param({c, c, 3, 3}, 11);
  Tensor g1 = Tensor::ones({c}).set_requires_grad(true), b1 = Tensor::zeros({c}).set_requires_grad(true);
  Tensor g2 = Tensor::ones({c}).set_requires_grad(true), b2 = Tensor::zeros({c}).set_requires_grad(true);
  Tensor rm1 = Tensor::zeros({c}), rv1 = Tensor::ones({c}), rm2 = Tensor::zeros({c}), rv2 = Tensor::ones({c});
  Tensor xin = x.clone().set_requires_grad(true);
  for (auto _ : state) {
    Tensor t = dp::kernels::relu(dp::kernels::batch_norm(xin, g1, b1, rm1, rv1, true));
    t = dp::kernels::conv2d(t, w1, Tensor(), 1, 1);
    t = dp::kernels::relu(dp::kernels::batch_norm(t, g2, b2, rm2, rv2, true));
    t = dp::kernels::add(dp::kernels::conv2d(t, w2, Tensor(), 1, 1), xin);
    dp::kernels::mean(t).backward();
    for (Tensor* p : {&w1, &w2, &g1, &b1, &g2, &b2, &xin}) p->zero_grad();
  }
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(n * state.iterations()), benchmark::Counter::kIsRate);
  set_gflops(state, 2 * 3 * 2.0 * n * c * c * 9 * h * h);  // two convs, three passes each
}
BENCHMARK(BM_WrnBlockStep)->ArgNames({"C", "H"})->Args({64, 32})->Args({128, 16})->Args({256, 8})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
