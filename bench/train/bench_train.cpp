// Data-parameter path benchmarks:
//  * fused gather_scale_softmax_ce (one pass per row) vs the unfused sequence (gather θ, exp,
//    divide, log-softmax, NLL, softmax backward, divide backward, σ and θ gradients), CPU;
//  * SparseSGD on ImageNet's 1,281,167 instance parameters with batch 256 vs the reference's
//    dense step (zero the dense gradient, scatter, masked momentum step over all rows, clamp all);
//  * CUDA variants timed with CUDA events (skipped without a device).
// After the Google Benchmark table, prints the fused/unfused and sparse/dense ratios.
// Run: build/bench/train/bench_train --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "engine/tensor.h"
#include "engine/thread_pool.h"
#include "kernels/training_ops.h"

#ifdef DP_WITH_CUDA
#include <cuda_runtime_api.h>

#include "engine/cuda/context.h"
#endif

namespace {

using dp::Tensor;

template <class T>
Tensor vec(const std::vector<T>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
}

constexpr int64_t kImageNetRows = 1281167;
constexpr int64_t kBatch = 256;
constexpr float kLo = -2.9957323f, kHi = 2.9957323f;

struct CeProblem {
  int64_t B, C, N;
  std::vector<float> logits, tc, ti, dl, gc, gi;
  std::vector<int64_t> labels, indices;
  CeProblem(int64_t b, int64_t c, int64_t n) : B(b), C(c), N(n) {
    std::mt19937 gen(1);
    std::normal_distribution<float> normal(0.f, 3.f);
    std::uniform_int_distribution<int64_t> cls(0, C - 1), inst(0, N - 1);
    logits.resize(B * C);
    for (float& v : logits) v = normal(gen);
    tc.assign(C, 0.f);
    ti.assign(N, std::log(0.05f));
    dl.resize(B * C);
    gc.resize(B);
    gi.resize(B);
    labels.resize(B);
    indices.resize(B);
    for (int64_t b = 0; b < B; ++b) {
      labels[b] = cls(gen);
      indices[b] = inst(gen);
    }
  }
  // The fused op's tensors on `device`, outputs allocated.
  dp::kernels::DataParamCeTensors args(dp::Device device = dp::Device::cpu()) const {
    dp::kernels::DataParamCeTensors a;
    a.logits = Tensor::from_vector(logits, {B, C}).to(device);
    a.labels = vec(labels).to(device);
    a.indices = vec(indices).to(device);
    a.theta_class = vec(tc).to(device);
    a.theta_inst = vec(ti).to(device);
    a.wd_class = 1e-4;
    a.wd_inst = 1e-8;
    a.loss = Tensor::empty({}, dp::DType::Float32, device);
    a.dlogits = Tensor::empty({B, C}, dp::DType::Float32, device);
    a.dtheta_class_rows = Tensor::empty({B}, dp::DType::Float32, device);
    a.dtheta_inst_rows = Tensor::empty({B}, dp::DType::Float32, device);
    return a;
  }
};

// The unfused sequence, one op per pass with materialised intermediates (float32 throughout,
// as a framework would run it).
struct Unfused {
  std::vector<float> sigma, ec, ei, scaled, logp, dscaled, dsigma;
  float run(CeProblem& p) {
    const int64_t B = p.B, C = p.C;
    sigma.resize(B);
    ec.resize(B);
    ei.resize(B);
    scaled.resize(B * C);
    logp.resize(B * C);
    dscaled.resize(B * C);
    dsigma.resize(B);
    for (int64_t b = 0; b < B; ++b) ec[b] = p.tc[p.labels[b]];   // gather
    for (int64_t b = 0; b < B; ++b) ei[b] = p.ti[p.indices[b]];  // gather
    for (int64_t b = 0; b < B; ++b) ec[b] = std::exp(ec[b]);     // exp
    for (int64_t b = 0; b < B; ++b) ei[b] = std::exp(ei[b]);     // exp
    for (int64_t b = 0; b < B; ++b) sigma[b] = ec[b] + ei[b];    // add
    for (int64_t b = 0; b < B; ++b)                               // divide
      for (int64_t j = 0; j < C; ++j) scaled[b * C + j] = p.logits[b * C + j] / sigma[b];
    for (int64_t b = 0; b < B; ++b) {  // log-softmax
      const float* s = &scaled[b * C];
      float m = *std::max_element(s, s + C), sum = 0.f;
      for (int64_t j = 0; j < C; ++j) sum += std::exp(s[j] - m);
      const float lse = m + std::log(sum);
      for (int64_t j = 0; j < C; ++j) logp[b * C + j] = s[j] - lse;
    }
    float loss = 0.f;  // NLL, mean
    for (int64_t b = 0; b < B; ++b) loss -= logp[b * C + p.labels[b]] / B;
    for (int64_t b = 0; b < B; ++b)  // softmax-CE backward
      for (int64_t j = 0; j < C; ++j)
        dscaled[b * C + j] = (std::exp(logp[b * C + j]) - (j == p.labels[b] ? 1.f : 0.f)) / B;
    for (int64_t b = 0; b < B; ++b)  // divide backward w.r.t. logits
      for (int64_t j = 0; j < C; ++j) p.dl[b * C + j] = dscaled[b * C + j] / sigma[b];
    for (int64_t b = 0; b < B; ++b) {  // divide backward w.r.t. σ (row reduction)
      float acc = 0.f;
      for (int64_t j = 0; j < C; ++j) acc -= dscaled[b * C + j] * p.logits[b * C + j];
      dsigma[b] = acc / (sigma[b] * sigma[b]);
    }
    for (int64_t b = 0; b < B; ++b) p.gc[b] = dsigma[b] * ec[b] + 1e-4f * p.tc[p.labels[b]];
    for (int64_t b = 0; b < B; ++b) p.gi[b] = dsigma[b] * ei[b] + 1e-8f * p.ti[p.indices[b]];
    return loss;
  }
};

void BM_FusedDataParamCe_Cpu(benchmark::State& state) {
  CeProblem p(kBatch, state.range(0), kImageNetRows);
  const auto a = p.args();
  for (auto _ : state) dp::kernels::cpu::data_param_ce(a);
}
BENCHMARK(BM_FusedDataParamCe_Cpu)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_UnfusedDataParamCe_Cpu(benchmark::State& state) {
  CeProblem p(kBatch, state.range(0), kImageNetRows);
  Unfused u;
  for (auto _ : state) benchmark::DoNotOptimize(u.run(p));
}
BENCHMARK(BM_UnfusedDataParamCe_Cpu)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

struct SgdProblem {
  Tensor theta, buf, dense_grad, rows, grads, lr = Tensor::scalar(0.8, dp::DType::Float32);
  std::vector<int64_t> updated;
  explicit SgdProblem(int64_t N)
      : theta(Tensor::full({N}, 0.1)), buf(Tensor::zeros({N})), dense_grad(Tensor::zeros({N})) {
    std::mt19937 gen(2);
    std::uniform_int_distribution<int64_t> row(0, N - 1);
    std::normal_distribution<float> normal(0.f, 1e-3f);
    std::vector<int64_t> r;
    std::vector<float> g;
    for (int64_t b = 0; b < kBatch; ++b) {
      r.push_back(row(gen));
      g.push_back(normal(gen));
    }
    rows = vec(r);
    grads = vec(g);
  }
  static dp::kernels::SparseSgdHyper hyper() { return {0.9f, dp::kernels::SparsePresence::NonZeroGrad, true, kLo, kHi}; }
  void sparse_step(bool first) { dp::kernels::cpu::sparse_sgd_step(theta, buf, rows, grads, lr, hyper(), first, &updated); }
  // The reference: dense gradient zeroed, filled by the index backward, masked step, clamp all.
  void dense_step(bool first) {
    std::memset(dense_grad.data<float>(), 0, dense_grad.nbytes());
    dp::kernels::cpu::scatter_rows_add(dense_grad, rows, grads, true);
    dp::kernels::cpu::sparse_sgd_step_dense(theta, buf, dense_grad, 0.8f, 0.9f, first);
    dp::kernels::cpu::clamp_all(theta, kLo, kHi);
  }
};

void BM_SparseSgd_Cpu(benchmark::State& state) {
  SgdProblem p(kImageNetRows);
  for (auto _ : state) p.sparse_step(false);
}
BENCHMARK(BM_SparseSgd_Cpu)->Unit(benchmark::kMicrosecond);

void BM_DenseReferenceSgd_Cpu(benchmark::State& state) {
  SgdProblem p(kImageNetRows);
  for (auto _ : state) p.dense_step(false);
}
BENCHMARK(BM_DenseReferenceSgd_Cpu)->Unit(benchmark::kMicrosecond);

#ifdef DP_WITH_CUDA
// Times `body` with CUDA events on the context's stream per iteration (manual time).
template <class F>
void time_cuda(benchmark::State& state, F body) {
  cudaStream_t stream = dp::cuda::context(0).stream();
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int i = 0; i < 10; ++i) body();  // warm-up
  for (auto _ : state) {
    cudaEventRecord(start, stream);
    body();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0.f;
    cudaEventElapsedTime(&ms, start, stop);
    state.SetIterationTime(ms / 1000.0);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

void BM_FusedDataParamCe_Cuda(benchmark::State& state) {
  if (!dp::cuda_available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  CeProblem p(kBatch, state.range(0), kImageNetRows);
  const auto a = p.args(dp::Device::cuda(0));
  time_cuda(state, [&] { dp::kernels::cuda::data_param_ce(a); });
}
BENCHMARK(BM_FusedDataParamCe_Cuda)->Arg(10)->Arg(1000)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_SparseSgd_Cuda(benchmark::State& state) {
  if (!dp::cuda_available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const dp::Device gpu = dp::Device::cuda(0);
  SgdProblem p(kImageNetRows);
  Tensor theta = p.theta.to(gpu), buf = p.buf.to(gpu), rows = p.rows.to(gpu), grads = p.grads.to(gpu),
         dense = p.dense_grad.to(gpu), lr = p.lr.to(gpu);
  const bool dense_ref = state.range(0) != 0;
  time_cuda(state, [&] {
    if (dense_ref) {  // the O(N) part of the reference on the GPU: zero grad, scatter, clamp all
      cudaMemsetAsync(dense.raw_data(), 0, dense.nbytes(), dp::cuda::context(gpu).stream());
      dp::kernels::cuda::scatter_rows_add(dense, rows, grads, false);
      dp::kernels::cuda::clamp_all(theta, kLo, kHi);
    } else {
      dp::kernels::cuda::sparse_sgd_step(theta, buf, rows, grads, lr, SgdProblem::hyper(), false, nullptr);
    }
  });
}
BENCHMARK(BM_SparseSgd_Cuda)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMicrosecond);
#endif

template <class F>
double median_us(F fn, int reps) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void print_ratios() {
  for (int64_t C : {10, 1000}) {
    CeProblem p(kBatch, C, kImageNetRows);
    const auto a = p.args();
    Unfused u;
    const double fused = median_us([&] { dp::kernels::cpu::data_param_ce(a); }, 51);
    const int threads = dp::num_threads();
    dp::set_num_threads(1);
    const double fused1 = median_us([&] { dp::kernels::cpu::data_param_ce(a); }, 51);
    dp::set_num_threads(threads);
    const double unfused = median_us([&] { benchmark::DoNotOptimize(u.run(p)); }, 51);
    std::printf("ratio CPU unfused(1 thread)/fused data-param CE, B=%ld C=%ld: %.2fx with %d threads "
                "(%.1f us vs %.1f us), %.2fx with 1 thread (%.1f us)\n",
                static_cast<long>(kBatch), static_cast<long>(C), unfused / fused, threads, unfused, fused,
                unfused / fused1, fused1);
  }
  SgdProblem p(kImageNetRows);
  const double sparse = median_us([&] { p.sparse_step(false); }, 101);
  const double dense = median_us([&] { p.dense_step(false); }, 21);
  std::printf("ratio CPU dense-reference/sparse data-param step, N=%ld B=%ld: %.0fx (%.1f us vs %.2f us)\n",
              static_cast<long>(kImageNetRows), static_cast<long>(kBatch), dense / sparse, dense, sparse);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  print_ratios();
  return 0;
}
