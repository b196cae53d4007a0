// The cost of data parameters on a whole training step (forward, loss, backward, model SGD,
// data-parameter SparseSGD steps and clamp): none vs class + instance (joint), same net, same
// batch, alternating runs, median step time. The paper calls the overhead negligible.
//
//   bench_dp_overhead [--net wrn-10-1] [--batch 128] [--size 32] [--classes 100]
//                     [--instances 50000] [--iters 10] [--device cpu|cuda]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"
#include "nets/registry.h"
#include "train/data_parameters.h"
#include "train/train_step.h"
#include "train/sgd.h"

using namespace dp;

namespace {

struct Setup {
  std::string net = "wrn-10-1";
  int64_t batch = 128, size = 32, classes = 100, instances = 50000;
  int iters = 10;
  Device device = Device::cpu();
};

// Median step time in ms; `joint` learns class and instance parameters (CIFAR settings).
double step_ms(const Setup& s, bool joint) {
  auto model = nets::make_net(s.net, s.classes, 1);
  model->to(s.device);
  train::SGD sgd(model->parameters(), {0.1, 0.9, 5e-4, false});
  train::DataParamConfig cfg;
  cfg.learn_class_parameters = cfg.learn_inst_parameters = joint;
  cfg.lr_inst_param = 0.2;
  train::DataParameters dp(cfg, s.classes, s.instances, s.device);
  Rng rng(5, 0);
  std::vector<float> pixels(static_cast<size_t>(s.batch * 3 * s.size * s.size));
  for (float& v : pixels) v = static_cast<float>(rng.uniform(-1, 1));
  train::TrainStep step(*model, sgd, dp);  // dp-train's step, eager (graphs would hide the launches)
  train::BatchTensors batch;
  batch.images = Tensor::from_vector(pixels, {s.batch, 3, s.size, s.size}, s.device);
  std::vector<double> times;
  for (int it = 0; it < s.iters + 2; ++it) {
    std::vector<int64_t> labels, indices;
    for (int64_t b = 0; b < s.batch; ++b) {
      labels.push_back(static_cast<int64_t>(rng.below(static_cast<uint64_t>(s.classes))));
      indices.push_back(static_cast<int64_t>(rng.below(static_cast<uint64_t>(s.instances))));
    }
    batch.labels = Tensor::from_vector(labels, {s.batch}, s.device);
    batch.indices = Tensor::from_vector(indices, {s.batch}, s.device);
    auto t0 = std::chrono::steady_clock::now();
    step.run(batch, 0.1);
    (void)step.totals();  // waits for the device
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (it >= 2) times.push_back(ms);  // two warm-up steps (the first clamp is the full O(N) one)
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Setup s;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        DP_CHECK(i + 1 < argc, "missing value after " + a, "see the usage at the top of dp_overhead.cpp");
        return argv[++i];
      };
      if (a == "--net") s.net = value();
      else if (a == "--batch") s.batch = std::stoll(value());
      else if (a == "--size") s.size = std::stoll(value());
      else if (a == "--classes") s.classes = std::stoll(value());
      else if (a == "--instances") s.instances = std::stoll(value());
      else if (a == "--iters") s.iters = std::stoi(value());
      else if (a == "--device") s.device = parse_device(value());
      else DP_THROW("unknown argument " + a, "see the usage at the top of dp_overhead.cpp");
    }
    double none = 1e300, joint = 1e300;
    for (int round = 0; round < 3; ++round) {  // alternate: shared machines drift
      none = std::min(none, step_ms(s, false));
      joint = std::min(joint, step_ms(s, true));
    }
    std::printf("%s batch %lld %lldx%lld, %lld classes, %lld instances on %s: step %.2f ms without data "
                "parameters, %.2f ms with class + instance (joint): overhead %+.1f%%\n",
                s.net.c_str(), static_cast<long long>(s.batch), static_cast<long long>(s.size),
                static_cast<long long>(s.size), static_cast<long long>(s.classes),
                static_cast<long long>(s.instances), s.device.str().c_str(), none, joint,
                100.0 * (joint - none) / none);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_dp_overhead: %s\n", e.what());
    return 1;
  }
  return 0;
}
