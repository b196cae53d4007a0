// Throughput of the ImageNet training pipeline on real photos: JPEG decode of the crop window (with
// DCT scaling) + RandomResizedCrop(224) + horizontal flip + normalise to float CHW, through the Loader.
// Usage: data_pipeline <folder of JPEGs> [threads ...]   (prints img/s and img/s per thread)
// bench/data/data_side_by_side.py runs it beside torchvision+PIL doing the same work.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "data/file_io.h"
#include "data/loader.h"

using namespace dp::data;
namespace fs = std::filesystem;

// The files held in memory, so the benchmark measures decoding and augmentation, not the disk.
class InMemoryJpegs final : public Dataset {
 public:
  explicit InMemoryJpegs(const std::string& folder) {
    for (const auto& e : fs::directory_iterator(folder)) {
      const std::string ext = e.path().extension().string();
      if (ext == ".JPEG" || ext == ".jpg" || ext == ".jpeg") paths_.push_back(e.path().string());
    }
    std::sort(paths_.begin(), paths_.end());
    for (const auto& p : paths_) bytes_.push_back(read_file_bytes(p));
  }
  int64_t size() const override { return static_cast<int64_t>(paths_.size()); }
  int64_t num_classes() const override { return 1; }
  int64_t label(int64_t) const override { return 0; }
  RawSample load(int64_t i) const override {
    RawSample s;
    s.index = i;
    s.encoded = bytes_[i];
    s.source = paths_[i];
    return s;
  }
  std::string source(int64_t i) const override { return paths_[i]; }

 private:
  std::vector<std::string> paths_;
  std::vector<std::vector<uint8_t>> bytes_;
};

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <folder of JPEGs> [threads ...]\n", argv[0]);
    return 2;
  }
  auto ds = std::make_shared<InMemoryJpegs>(argv[1]);
  std::vector<int64_t> thread_counts;
  for (int a = 2; a < argc; ++a) thread_counts.push_back(std::stoll(argv[a]));
  if (thread_counts.empty()) thread_counts = {1, static_cast<int64_t>(std::thread::hardware_concurrency())};
  for (int64_t threads : thread_counts) {
    LoaderOptions options;
    options.batch_size = 25;
    options.num_workers = threads;
    Loader loader(ds, Transform(imagenet_train_transform(224)), options);
    loader.start_epoch(0);  // warm-up epoch (allocator, decoder handles, page cache)
    while (loader.next()) {
    }
    const int epochs = 2;
    const auto start = std::chrono::steady_clock::now();
    int64_t images = 0;
    for (int e = 1; e <= epochs; ++e) {
      loader.start_epoch(e);
      while (auto b = loader.next()) images += b->n;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("dp-engine threads=%lld images=%lld seconds=%.3f img/s=%.1f img/s/thread=%.1f\n",
                static_cast<long long>(threads), static_cast<long long>(images), s, images / s,
                images / s / static_cast<double>(threads));
  }
  return 0;
}
