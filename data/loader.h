// Multi-threaded batch loader: worker threads decode and augment, a bounded window of batches is
// prepared ahead, and batches come out in a fixed order. Which samples form batch k, and every
// pixel in it, depend only on (seed, epoch, rank, world_size) and never on the thread count.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"

namespace dp::data {

// Where batch images live. The default is plain heap memory; the CUDA backend can pass pinned
// (page-locked) host memory here so host-to-device copies run asynchronously.
struct HostAllocator {
  std::function<float*(size_t count)> allocate;
  std::function<void(float*, size_t count)> deallocate;
};

// A sample the skip policy dropped, and why (the exception's message).
struct SkippedSample {
  int64_t index = 0;
  std::string source;  // file path or description (Dataset::source)
  std::string reason;
};

// What the skip policy dropped in one epoch: the count and the first few, in batch order (the
// same for any number of workers).
struct SkipReport {
  static constexpr size_t kExamples = 5;
  int64_t count = 0;
  std::vector<SkippedSample> first;  // at most kExamples
  void add(const SkippedSample& s);
};

struct Batch {
  // Images as contiguous float32 NCHW. `images` holds them unless a HostAllocator is set, in which
  // case `external` does; data() points at whichever is in use.
  std::vector<float> images;
  std::shared_ptr<float> external;
  int64_t n = 0, c = 0, h = 0, w = 0;
  std::vector<int64_t> labels;
  std::vector<int64_t> indices;  // dataset indices (instance ids)
  int64_t skipped = 0;           // samples dropped from this batch by the skip policy
  std::vector<SkippedSample> skipped_samples;  // which ones, and why

  float* data() { return external ? external.get() : images.data(); }
  const float* data() const { return external ? external.get() : images.data(); }
};

enum class BadSamplePolicy {
  kFail,  // default: the batch that holds a bad sample throws dp::Error naming its file
  kSkip,  // drop the sample (the batch is one shorter) and count it
};

struct LoaderOptions {
  // The global batch: with world_size ranks each takes batch_size / world_size of it (see
  // Loader::start_epoch); must be divisible by world_size.
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;  // keep the last partial batch (the reference keeps it)
  uint64_t seed = 0;
  int64_t num_workers = 0;  // 0: std::thread::hardware_concurrency()
  int64_t prefetch_batches = 0;  // batches prepared ahead of the consumer; 0: 2 * num_workers
  int64_t rank = 0;
  int64_t world_size = 1;
  BadSamplePolicy bad_samples = BadSamplePolicy::kFail;
  HostAllocator allocator;  // empty: std::vector
};

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, Transform transform, LoaderOptions options);
  ~Loader();  // stops workers mid-epoch and joins them
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts (or restarts) epoch `epoch`: its order is a Philox-keyed shuffle of (seed, epoch), cut
  // into global batches of batch_size. Rank r takes the r-th contiguous slice of every global batch
  // (batch_size / world_size samples; in a last partial batch the slices differ by at most one), so
  // the ranks' batches k concatenated in rank order are exactly the single process's batch k, in
  // the same order. A last partial batch with fewer samples than ranks is dropped on every rank
  // (no rank may have an empty batch); every rank has the same number of batches.
  // `first_batch` > 0 starts the epoch at that batch (a run resumed mid-epoch): the batches from
  // there on are exactly those of an epoch started at 0, and the ones before are not built.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the current epoch, std::nullopt at its end. Rethrows a worker's error.
  std::optional<Batch> next();

  int64_t num_batches() const;     // in an epoch (the same on every rank)
  int64_t shard_size() const;      // samples of this rank per epoch
  int64_t local_batch_size() const { return options_.batch_size / options_.world_size; }
  // Samples of global batch `batch_index` taken by each rank (rank order); sums to the global batch.
  std::vector<int64_t> batch_split(int64_t batch_index) const;
  int64_t skipped_total() const;   // samples skipped since construction (skip policy)
  // The samples skipped in the current epoch by the batches next() has returned so far.
  const SkipReport& epoch_skips() const { return epoch_skips_; }
  // The sample order of this rank for `epoch` (what start_epoch uses).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  struct Slot {
    bool ready = false;
    std::optional<Batch> batch;
    std::exception_ptr error;
  };
  void worker_loop();
  Batch build_batch(int64_t batch_index) const;
  void stop_workers();

  std::shared_ptr<const Dataset> dataset_;
  Transform transform_;
  LoaderOptions options_;

  // Epoch state, guarded by mutex_.
  mutable std::mutex mutex_;
  std::condition_variable work_cv_;   // workers wait for window space
  std::condition_variable ready_cv_;  // the consumer waits for its batch
  std::vector<std::thread> workers_;
  std::vector<int64_t> order_;
  int64_t epoch_ = -1;
  int64_t next_to_claim_ = 0;
  int64_t next_to_return_ = 0;
  std::map<int64_t, Slot> slots_;
  bool stopping_ = false;
  int64_t skipped_total_ = 0;
  SkipReport epoch_skips_;  // consumer side (next()), no lock needed
};

}  // namespace dp::data
