// Throughput of one full training step on CPU — dp-train's own step (train/train_step.h):
// forward, cross-entropy (the fused data-parameter loss with no θ learnt), backward, plain SGD
// (lr 0.01, no momentum or weight decay, as side_by_side.py's PyTorch step) — or of the
// evaluation step (--mode eval: eval-mode forward without autograd), for the nets the project
// trains, timed with std::chrono after warm-up steps.
//
//   bench_nets_train_step [--net wrn-16-4 --batch 128 --size 32 --classes 10] [--mode train|eval]
//                         [--warmup 1 --iters 3 --threads N]
//   bench_nets_train_step --sgemm 4096 [--threads N]   # the BLAS's sgemm rate (N BLAS threads)
// Without --net it runs WRN-16-4 (batch 128, 32x32, 10 classes) and ResNet-18 (batch 32,
// 224x224, 1000 classes). Prints one "RESULT ..." line per net (parsed by side_by_side.py) with
// the process's CPU time per step (all threads: on a shared machine the steadier figure), its
// resident memory before the first step and its peak (VmHWM) after the last.
#include <cblas.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "engine/thread_pool.h"
#include "kernels/ops.h"
#include "nets/registry.h"
#include "train/data_parameters.h"
#include "train/train_step.h"
#include "train/sgd.h"

using namespace dp;

namespace {

struct Config {
  std::string net;
  int64_t batch, size, classes;
  bool train = true;
};

// A field of /proc/self/status in MiB (VmRSS: now, VmHWM: peak).
double status_mib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  return 0.0;
}


// sgemm n×n×n through OpenBLAS with `threads` threads: best of 3 after one warm-up.
double sgemm_gflops(int64_t n, int threads) {
  openblas_set_num_threads(threads);
  std::vector<float> a(static_cast<size_t>(n * n), 0.5f), b(a.size(), 0.25f), c(a.size(), 0.0f);
  auto once = [&] {
    const int m = static_cast<int>(n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1.0f, a.data(), m, b.data(), m, 0.0f, c.data(), m);
  };
  once();
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    once();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * double(n) * double(n) * double(n) / best / 1e9;
}

double rss_before_mib = 0.0;  // VmRSS once the net and the batch exist
double cpu_s_per_step = 0.0;  // the process's CPU time (all threads) per timed step

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double run(const Config& c, int warmup, int iters) {
  auto net = nets::make_net(c.net, c.classes, 1);
  net->train(c.train);
  std::vector<float> pixels(static_cast<size_t>(c.batch * 3 * c.size * c.size));
  Rng rng(3, 0);
  for (auto& v : pixels) v = static_cast<float>(rng.uniform(-1.0, 1.0));
  std::vector<int64_t> labels(static_cast<size_t>(c.batch));
  for (int64_t i = 0; i < c.batch; ++i) labels[i] = i % c.classes;
  train::BatchTensors batch;
  batch.images = Tensor::from_vector(pixels, {c.batch, 3, c.size, c.size});
  batch.labels = Tensor::from_vector(labels, {c.batch});
  train::SGD sgd(net->parameters(), {0.01, 0.0, 0.0, false});
  train::DataParameters no_data_params({}, c.classes, c.batch);
  train::TrainStep train_step(*net, sgd, no_data_params);
  auto step = [&] {
    if (c.train) {
      train_step.run(batch, 0.01);
    } else {
      NoGradGuard no_grad;
      Tensor logits = net->forward(batch.images);
      (void)logits;
    }
  };
  rss_before_mib = status_mib("VmRSS");
  for (int i = 0; i < warmup; ++i) step();
  std::vector<double> times;
  const double cpu0 = process_cpu_seconds();
  for (int i = 0; i < iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    step();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  cpu_s_per_step = (process_cpu_seconds() - cpu0) / iters;
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];  // median
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<Config> configs;
    Config one{"", 0, 0, 10};
    int warmup = 1, iters = 3, threads = 0;
    int64_t sgemm = 0;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        DP_CHECK(i + 1 < argc, "missing value after " + a, "see the usage at the top of train_step.cpp");
        return argv[++i];
      };
      if (a == "--net") one.net = value();
      else if (a == "--batch") one.batch = std::stoll(value());
      else if (a == "--size") one.size = std::stoll(value());
      else if (a == "--classes") one.classes = std::stoll(value());
      else if (a == "--warmup") warmup = std::stoi(value());
      else if (a == "--iters") iters = std::stoi(value());
      else if (a == "--threads") threads = std::stoi(value());
      else if (a == "--mode") one.train = value() != "eval";
      else if (a == "--sgemm") sgemm = std::stoll(value());
      else DP_THROW("unknown argument " + a,
                    "options: --net --batch --size --classes --mode train|eval --warmup --iters --threads --sgemm N");
    }
    if (threads > 0) set_num_threads(threads);
    if (sgemm > 0) {
      std::printf("RESULT sgemm n=%lld threads=%d core=%s gflops=%.1f\n", static_cast<long long>(sgemm),
                  num_threads(), openblas_get_corename(), sgemm_gflops(sgemm, num_threads()));
      return 0;
    }
    if (!one.net.empty()) {
      if (one.batch == 0) one.batch = 32;
      if (one.size == 0) one.size = 32;
      configs.push_back(one);
    } else {
      configs = {{"wrn-16-4", 128, 32, 10, one.train}, {"resnet18", 32, 224, 1000, one.train}};
    }
    for (const auto& c : configs) {
      double s = run(c, warmup, std::max(iters, 1));
      std::printf("RESULT net=%s mode=%s batch=%lld size=%lld threads=%d step_ms=%.1f img_per_s=%.2f "
                  "cpu_s=%.2f rss_before_mib=%.0f peak_mib=%.0f\n",
                  c.net.c_str(), c.train ? "train" : "eval", static_cast<long long>(c.batch),
                  static_cast<long long>(c.size), num_threads(), s * 1e3, double(c.batch) / s, cpu_s_per_step, rss_before_mib,
                  status_mib("VmHWM"));
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_nets_train_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
