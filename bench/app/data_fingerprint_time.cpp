// The cost of the data fingerprint dp-train computes once per run (app/data_fingerprint.h), next to
// the cost of building the datasets it fingerprints (the folder scan dp-train does anyway):
//   data_fingerprint_time DATASET PATH [REPEATS]     e.g. imagefolder /data/imagenet
// Prints the seconds of each, per split, and the fingerprint.
#include <chrono>
#include <cstdio>
#include <string>

#include "app/config.h"
#include "app/data_fingerprint.h"
#include "app/run_data.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DATASET PATH [REPEATS]\n", argv[0]);
    return 2;
  }
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); };
  const int repeats = argc > 3 ? std::stoi(argv[3]) : 3;
  const dp::app::Config config = dp::app::Config::from_string(
      "", "bench", {"data.dataset=" + std::string(argv[1]), "data.path=" + std::string(argv[2]), "model.arch=tiny-cnn"});
  auto start = Clock::now();
  const dp::app::RunData data = dp::app::make_run_data(config);
  std::printf("datasets built (folder scan): %.3f s, %lld training + %lld validation samples\n", seconds(start),
              static_cast<long long>(data.train->size()), static_cast<long long>(data.test->size()));
  std::string json;
  for (int r = 0; r < repeats; ++r) {
    start = Clock::now();
    json = dp::app::fingerprint_run_data(data, config).to_json();
    std::printf("fingerprint %d: %.3f s\n", r + 1, seconds(start));
  }
  std::printf("%s\n", json.substr(0, 400).c_str());
  return 0;
}
