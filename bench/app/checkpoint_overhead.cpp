// What mid-epoch checkpoints cost a training step (issue 20): dp-train's Trainer on synthetic
// CIFAR-sized data, one epoch with run.checkpoint_every = "off" against one with a checkpoint every
// N steps (snapshot on the training thread, HDF5 write and commit in the background), alternating
// in one process. Reported: mean, median and slowest step (the interval between two steps'
// ends: loader, step, and any snapshot taken in between), the mean's ratio, and the save's size.
//
//   bench_checkpoint_overhead [--net wrn-16-4] [--batch 64] [--steps 60] [--every 10]
//                             [--repeats 2] [--workers 2]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "app/config.h"
#include "app/trainer.h"

using namespace dp;
using Clock = std::chrono::steady_clock;

namespace {

struct Setup {
  std::string net = "wrn-16-4";
  int64_t batch = 64, steps = 60, every = 10, workers = 2;
  int repeats = 2;
};

struct Timing {
  std::vector<double> step_ms;
  int saves = 0;
};

Timing one_epoch(const Setup& s, bool checkpoints, const std::string& folder) {
  std::filesystem::remove_all(folder);
  const std::vector<std::string> keys = {
      "data.synthetic_train_size=" + std::to_string(s.batch * s.steps), "data.synthetic_test_size=64",
      "data.image_size=32", "data.noise=permute", "data.rand_fraction=0.4", "model.arch=" + s.net,
      "optim.batch_size=" + std::to_string(s.batch), "optim.schedule=constant",
      "data_parameters.learn_inst_parameters=true", "data_parameters.learn_class_parameters=true",
      "run.epochs=1", "run.print_freq=1000000", "run.workers=" + std::to_string(s.workers),
      "run.checkpoint_every=" + (checkpoints ? std::to_string(s.every) + " steps" : std::string("off")),
      "run.output=" + folder};
  app::TrainerOptions o;
  o.quiet = true;
  o.write_logs = false;
  Timing t;
  Clock::time_point last{};
  o.after_step = [&](const app::Trainer&) {
    const Clock::time_point now = Clock::now();
    if (last != Clock::time_point{}) t.step_ms.push_back(std::chrono::duration<double, std::milli>(now - last).count());
    last = now;
  };
  o.commit_probe = [&](const std::string& point) { t.saves += point == "committed"; };
  app::Trainer trainer(app::Config::from_string("", "bench.toml", keys), o);
  trainer.run();
  return t;
}

double mean(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size()); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Setup s;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--net") s.net = v;
    else if (k == "--batch") s.batch = std::stoll(v);
    else if (k == "--steps") s.steps = std::stoll(v);
    else if (k == "--every") s.every = std::stoll(v);
    else if (k == "--repeats") s.repeats = std::stoi(v);
    else if (k == "--workers") s.workers = std::stoll(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  const std::string folder = (std::filesystem::temp_directory_path() / "dp-bench-checkpoint").string();
  Timing none, with;
  for (int r = 0; r < s.repeats; ++r) {
    for (bool checkpoints : {false, true}) {
      Timing t = one_epoch(s, checkpoints, folder);
      Timing& into = checkpoints ? with : none;
      into.step_ms.insert(into.step_ms.end(), t.step_ms.begin(), t.step_ms.end());
      into.saves += t.saves;
    }
  }
  const auto bytes = std::filesystem::file_size(folder + "/checkpoint.h5");
  std::filesystem::remove_all(folder);
  std::printf("%s, batch %lld, %lld steps per epoch, %d repeats, checkpoint %.1f MB\n", s.net.c_str(),
              static_cast<long long>(s.batch), static_cast<long long>(s.steps), s.repeats, bytes / 1e6);
  for (const auto& [name, t] : {std::pair{"no mid-epoch checkpoint", &none}, {"a checkpoint every N steps", &with}})
    std::printf("%-28s mean %8.1f ms  median %8.1f ms  slowest %8.1f ms  (%d saves)\n", name, mean(t->step_ms),
                median(t->step_ms), *std::max_element(t->step_ms.begin(), t->step_ms.end()), t->saves);
  std::printf("every %lld steps / none: mean step time ratio %.3f\n", static_cast<long long>(s.every),
              mean(with.step_ms) / mean(none.step_ms));
  return 0;
}
