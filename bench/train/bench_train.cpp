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

#include "kernels/cpu/data_param_ce.h"
#include "engine/thread_pool.h"
#include "kernels/cpu/sparse_sgd.h"

#ifdef DP_WITH_CUDA
#include <cuda_runtime_api.h>

#include "kernels/cuda/data_param_ce.h"
#include "kernels/cuda/sparse_sgd.h"
#endif

namespace {

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
  dp::kernels::DataParamCeArgs<float> args() {
    dp::kernels::DataParamCeArgs<float> a;
    a.logits = logits.data();
    a.labels = labels.data();
    a.indices = indices.data();
    a.theta_class = tc.data();
    a.theta_inst = ti.data();
    a.batch = B;
    a.num_classes = C;
    a.num_instances = N;
    a.wd_class = 1e-4;
    a.wd_inst = 1e-8;
    a.dlogits = dl.data();
    a.dtheta_class_rows = gc.data();
    a.dtheta_inst_rows = gi.data();
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
  auto a = p.args();
  for (auto _ : state) benchmark::DoNotOptimize(dp::kernels::data_param_ce_cpu(a));
}
BENCHMARK(BM_FusedDataParamCe_Cpu)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_UnfusedDataParamCe_Cpu(benchmark::State& state) {
  CeProblem p(kBatch, state.range(0), kImageNetRows);
  Unfused u;
  for (auto _ : state) benchmark::DoNotOptimize(u.run(p));
}
BENCHMARK(BM_UnfusedDataParamCe_Cpu)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

struct SgdProblem {
  std::vector<float> theta, buf, dense_grad;
  std::vector<int64_t> rows, updated;
  std::vector<float> grads;
  explicit SgdProblem(int64_t N) : theta(N, 0.1f), buf(N, 0.f), dense_grad(N, 0.f), updated(kBatch) {
    std::mt19937 gen(2);
    std::uniform_int_distribution<int64_t> row(0, N - 1);
    std::normal_distribution<float> normal(0.f, 1e-3f);
    for (int64_t b = 0; b < kBatch; ++b) {
      rows.push_back(row(gen));
      grads.push_back(normal(gen));
    }
  }
  void sparse_step(bool first) {
    dp::kernels::SparseSgdArgs a;
    a.param = theta.data();
    a.momentum_buf = buf.data();
    a.num_rows = static_cast<int64_t>(theta.size());
    a.rows = rows.data();
    a.grads = grads.data();
    a.n = kBatch;
    a.lr = 0.8f;
    a.first_step = first;
    a.updated_rows = updated.data();
    const int64_t count = dp::kernels::sparse_sgd_step_cpu(a);
    dp::kernels::clamp_rows_cpu(theta.data(), updated.data(), count, kLo, kHi);
  }
  // The reference: dense gradient zeroed, filled by the index backward, masked step, clamp all.
  void dense_step(bool first) {
    const int64_t N = static_cast<int64_t>(theta.size());
    std::memset(dense_grad.data(), 0, N * sizeof(float));
    dp::kernels::scatter_rows_to_dense_cpu(rows.data(), grads.data(), kBatch, dense_grad.data(), N);
    dp::kernels::sparse_sgd_step_dense_cpu(theta.data(), buf.data(), dense_grad.data(), N, 0.8f, 0.9f, first);
    dp::kernels::clamp_all_cpu(theta.data(), N, kLo, kHi);
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
bool have_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

template <class T>
T* to_device(const std::vector<T>& v) {
  T* p = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(1, v.size()) * sizeof(T));
  cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  return p;
}

// Times `body` with CUDA events per iteration (manual time).
template <class F>
void time_cuda(benchmark::State& state, F body) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int i = 0; i < 10; ++i) body();  // warm-up
  for (auto _ : state) {
    cudaEventRecord(start);
    body();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0.f;
    cudaEventElapsedTime(&ms, start, stop);
    state.SetIterationTime(ms / 1000.0);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

void BM_FusedDataParamCe_Cuda(benchmark::State& state) {
  if (!have_device()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  CeProblem p(kBatch, state.range(0), kImageNetRows);
  auto a = p.args();
  a.logits = to_device(p.logits);
  a.labels = to_device(p.labels);
  a.indices = to_device(p.indices);
  a.theta_class = to_device(p.tc);
  a.theta_inst = to_device(p.ti);
  a.dlogits = to_device(p.dl);
  a.dtheta_class_rows = to_device(p.gc);
  a.dtheta_inst_rows = to_device(p.gi);
  float* loss = to_device(std::vector<float>(1));
  float* scratch = to_device(std::vector<float>(kBatch));
  time_cuda(state, [&] { dp::kernels::data_param_ce_cuda(a, loss, scratch, nullptr); });
  for (const void* ptr : {static_cast<const void*>(a.logits), static_cast<const void*>(a.labels),
                          static_cast<const void*>(a.indices), static_cast<const void*>(a.theta_class),
                          static_cast<const void*>(a.theta_inst), static_cast<const void*>(a.dlogits),
                          static_cast<const void*>(a.dtheta_class_rows),
                          static_cast<const void*>(a.dtheta_inst_rows), static_cast<const void*>(loss),
                          static_cast<const void*>(scratch)})
    cudaFree(const_cast<void*>(ptr));
}
BENCHMARK(BM_FusedDataParamCe_Cuda)->Arg(10)->Arg(1000)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_SparseSgd_Cuda(benchmark::State& state) {
  if (!have_device()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  SgdProblem p(kImageNetRows);
  float* theta = to_device(p.theta);
  float* buf = to_device(p.buf);
  int64_t* rows = to_device(p.rows);
  float* grads = to_device(p.grads);
  float* dense = to_device(p.dense_grad);
  const bool dense_ref = state.range(0) != 0;
  time_cuda(state, [&] {
    if (dense_ref) {  // the O(N) part of the reference on the GPU: zero grad, scatter, clamp all
      cudaMemsetAsync(dense, 0, kImageNetRows * sizeof(float));
      dp::kernels::scatter_rows_to_dense_cuda(rows, grads, kBatch, dense, kImageNetRows, false, nullptr);
      dp::kernels::clamp_all_cuda(theta, kImageNetRows, kLo, kHi, nullptr);
    } else {
      dp::kernels::SparseSgdArgs a;
      a.param = theta;
      a.momentum_buf = buf;
      a.num_rows = kImageNetRows;
      a.rows = rows;
      a.grads = grads;
      a.n = kBatch;
      a.lr = 0.8f;
      dp::kernels::sparse_sgd_step_cuda(a, true, kLo, kHi, nullptr);
    }
  });
  cudaFree(theta);
  cudaFree(buf);
  cudaFree(rows);
  cudaFree(grads);
  cudaFree(dense);
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
    auto a = p.args();
    Unfused u;
    const double fused = median_us([&] { benchmark::DoNotOptimize(dp::kernels::data_param_ce_cpu(a)); }, 51);
    const int threads = dp::num_threads();
    dp::set_num_threads(1);
    const double fused1 = median_us([&] { benchmark::DoNotOptimize(dp::kernels::data_param_ce_cpu(a)); }, 51);
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
