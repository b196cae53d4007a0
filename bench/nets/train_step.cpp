// Throughput of one full training step on CPU — dp-train's own step (train/train_step.h):
// forward, cross-entropy (the fused data-parameter loss with no θ learnt), backward, plain SGD
// (lr 0.01, no momentum or weight decay, as side_by_side.py's PyTorch step) — for the nets the
// project trains, timed with std::chrono after warm-up steps.
//
//   bench_nets_train_step [--net wrn-16-4 --batch 128 --size 32 --classes 10]
//                         [--warmup 1 --iters 3 --threads N]
// Without --net it runs WRN-16-4 (batch 128, 32x32, 10 classes) and ResNet-18 (batch 32,
// 224x224, 1000 classes). Prints one "RESULT ..." line per net (parsed by side_by_side.py).
#include <algorithm>
#include <chrono>
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
};

double run(const Config& c, int warmup, int iters) {
  auto net = nets::make_net(c.net, c.classes, 1);
  net->train();
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
  auto step = [&] { train_step.run(batch, 0.01); };
  for (int i = 0; i < warmup; ++i) step();
  std::vector<double> times;
  for (int i = 0; i < iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    step();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];  // median
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<Config> configs;
    Config one{"", 0, 0, 10};
    int warmup = 1, iters = 3, threads = 0;
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
      else DP_THROW("unknown argument " + a, "options: --net --batch --size --classes --warmup --iters --threads");
    }
    if (threads > 0) set_num_threads(threads);
    if (!one.net.empty()) {
      if (one.batch == 0) one.batch = 32;
      if (one.size == 0) one.size = 32;
      configs.push_back(one);
    } else {
      configs = {{"wrn-16-4", 128, 32, 10}, {"resnet18", 32, 224, 1000}};
    }
    for (const auto& c : configs) {
      double s = run(c, warmup, std::max(iters, 1));
      std::printf("RESULT net=%s batch=%lld size=%lld threads=%d step_ms=%.1f img_per_s=%.2f\n", c.net.c_str(),
                  static_cast<long long>(c.batch), static_cast<long long>(c.size), num_threads(), s * 1e3,
                  double(c.batch) / s);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_nets_train_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
