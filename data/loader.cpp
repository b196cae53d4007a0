#include "data/loader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "data/sample_rng.h"
#include "engine/error.h"

namespace dp::data {

Loader::Loader(std::shared_ptr<const Dataset> dataset, Transform transform, LoaderOptions options)
    : dataset_(std::move(dataset)), transform_(std::move(transform)), options_(std::move(options)) {
  DP_CHECK(dataset_ != nullptr, "loader needs a dataset", "pass a dataset");
  DP_CHECK(options_.batch_size > 0, "batch size must be positive", "e.g. 128");
  DP_CHECK(options_.world_size >= 1 && options_.rank >= 0 && options_.rank < options_.world_size,
           "rank " + std::to_string(options_.rank) + " is not in [0, world_size " +
               std::to_string(options_.world_size) + ")",
           "check the distributed launch settings");
  DP_CHECK(options_.batch_size % options_.world_size == 0,
           "the batch size " + std::to_string(options_.batch_size) + " is not divisible by the " +
               std::to_string(options_.world_size) + " ranks",
           "optim.batch_size is the global batch: make it a multiple of the number of processes");
  if (options_.num_workers <= 0)
    options_.num_workers = std::max<int64_t>(1, std::thread::hardware_concurrency());
  if (options_.prefetch_batches <= 0) options_.prefetch_batches = 2 * options_.num_workers;
  DP_CHECK(static_cast<bool>(options_.allocator.allocate) ==
               static_cast<bool>(options_.allocator.deallocate),
           "host allocator needs both allocate and deallocate", "set both callbacks or neither");
}

Loader::~Loader() { stop_workers(); }

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  ready_cv_.notify_all();
  for (auto& worker : workers_) worker.join();
  workers_.clear();
}

std::vector<int64_t> Loader::batch_split(int64_t batch_index) const {
  const int64_t n = dataset_->size(), world = options_.world_size;
  const int64_t in_batch = std::clamp<int64_t>(n - batch_index * options_.batch_size, 0, options_.batch_size);
  std::vector<int64_t> split(static_cast<size_t>(world), 0);
  if (in_batch < world) return split;  // dropped (see start_epoch)
  for (int64_t r = 0; r < world; ++r) split[r] = in_batch / world + (r < in_batch % world ? 1 : 0);
  return split;
}

int64_t Loader::num_batches() const {
  const int64_t n = dataset_->size(), full = n / options_.batch_size, rest = n % options_.batch_size;
  return full + (!options_.drop_last && rest > 0 && rest >= options_.world_size ? 1 : 0);
}

int64_t Loader::shard_size() const {
  const int64_t full = dataset_->size() / options_.batch_size;
  int64_t n = full * local_batch_size();
  if (num_batches() > full) n += batch_split(full)[options_.rank];
  return n;
}

void SkipReport::add(const SkippedSample& s) {
  ++count;
  if (first.size() < kExamples) first.push_back(s);
}

int64_t Loader::skipped_total() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return skipped_total_;
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  const int64_t n = dataset_->size();
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[i] = i;
  if (options_.shuffle) {
    // Fisher-Yates with one keyed stream per epoch: the same on every rank, so shards are disjoint.
    SampleRng rng(options_.seed, RngStream::kShuffle, static_cast<uint64_t>(epoch), 0);
    for (int64_t i = n - 1; i >= 1; --i)
      std::swap(all[i], all[static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1))]);
  }
  // This rank's slice of each global batch, batch after batch.
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(shard_size()));
  for (int64_t k = 0; k < num_batches(); ++k) {
    const std::vector<int64_t> split = batch_split(k);
    int64_t p = k * options_.batch_size;
    for (int64_t r = 0; r < options_.rank; ++r) p += split[r];
    for (int64_t j = 0; j < split[options_.rank]; ++j) mine.push_back(all[p + j]);
  }
  return mine;
}

void Loader::start_epoch(int64_t epoch, int64_t first_batch) {
  DP_CHECK(first_batch >= 0 && first_batch <= num_batches(),
           fmt::format("Loader::start_epoch: batch {} is outside the epoch's {} batches", first_batch, num_batches()),
           "a run resumes at a batch of the same dataset and batch size it was saved with");
  stop_workers();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    order_ = epoch_order(epoch);
    epoch_ = epoch;
    next_to_claim_ = next_to_return_ = first_batch;
    slots_.clear();
    epoch_skips_ = SkipReport{};
    stopping_ = false;
  }
  const int64_t threads = std::min<int64_t>(options_.num_workers, std::max<int64_t>(1, num_batches()));
  for (int64_t t = 0; t < threads; ++t) workers_.emplace_back([this] { worker_loop(); });
}

void Loader::worker_loop() {
  const int64_t total = num_batches();
  while (true) {
    int64_t batch_index;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // Claim the next batch only while it lies inside the prefetch window: bounded memory.
      work_cv_.wait(lock, [&] {
        return stopping_ || next_to_claim_ >= total ||
               next_to_claim_ < next_to_return_ + options_.prefetch_batches;
      });
      if (stopping_ || next_to_claim_ >= total) return;
      batch_index = next_to_claim_++;
    }
    Slot slot;
    slot.ready = true;
    try {
      slot.batch = build_batch(batch_index);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (slot.batch) skipped_total_ += slot.batch->skipped;
      slots_[batch_index] = std::move(slot);
    }
    ready_cv_.notify_all();
  }
}

Batch Loader::build_batch(int64_t batch_index) const {
  // Every batch but a last partial one holds local_batch_size() samples of this rank's order.
  const int64_t begin = batch_index * local_batch_size();
  const int64_t end = std::min<int64_t>(begin + local_batch_size(), static_cast<int64_t>(order_.size()));
  const TransformSpec& spec = transform_.spec();
  Batch batch;
  batch.c = 3;
  int64_t capacity = end - begin;
  std::vector<float> staging;  // used while the output size is unknown (Geometry::kNone)
  std::vector<float> sample_buffer;
  for (int64_t k = begin; k < end; ++k) {
    // Stop promptly on shutdown: a worker finishes at most the sample it is on.
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return batch;
    }
    const int64_t index = order_[k];
    std::string source;
    try {
      RawSample sample = dataset_->load(index);
      if (sample.source.empty()) sample.source = dataset_->source(index);
      source = sample.source;
      if (spec.geometry != Geometry::kNone) {
        // Output size known up front: transform straight into the batch (fused flip + normalise).
        const size_t per_sample = static_cast<size_t>(3 * spec.height * spec.width);
        if (staging.empty()) {
          batch.h = spec.height;
          batch.w = spec.width;
          staging.resize(per_sample * static_cast<size_t>(capacity));
        }
        transform_.apply(sample, options_.seed, epoch_, staging.data() + per_sample * static_cast<size_t>(batch.n));
        batch.labels.push_back(sample.label);
        batch.indices.push_back(index);
        ++batch.n;
        continue;
      }
      const Image image = transform_.apply_uint8(sample, options_.seed, epoch_);
      if (batch.h == 0) {
        batch.h = image.height;
        batch.w = image.width;
      }
      DP_CHECK(image.height == batch.h && image.width == batch.w,
               "sample '" + sample.source + "' is " + std::to_string(image.height) + "x" +
                   std::to_string(image.width) + ", the batch is " + std::to_string(batch.h) + "x" +
                   std::to_string(batch.w),
               "images of different sizes need a resizing transform (e.g. RandomResizedCrop)");
      const size_t per_sample = static_cast<size_t>(3 * batch.h * batch.w);
      if (staging.empty()) staging.resize(per_sample * static_cast<size_t>(capacity));
      const auto mean = spec.normalize ? spec.mean : std::array<float, 3>{0.f, 0.f, 0.f};
      const auto stdv = spec.normalize ? spec.std : std::array<float, 3>{1.f, 1.f, 1.f};
      normalize_to_chw(image, mean, stdv, staging.data() + per_sample * static_cast<size_t>(batch.n));
      batch.labels.push_back(sample.label);
      batch.indices.push_back(index);
      ++batch.n;
    } catch (const std::exception& e) {
      if (options_.bad_samples == BadSamplePolicy::kFail) throw;
      ++batch.skipped;
      batch.skipped_samples.push_back({index, source.empty() ? dataset_->source(index) : source, e.what()});
    }
  }
  const size_t count = static_cast<size_t>(batch.n * batch.c * batch.h * batch.w);
  if (options_.allocator.allocate) {
    float* memory = options_.allocator.allocate(count);
    std::memcpy(memory, staging.data(), count * sizeof(float));
    auto deallocate = options_.allocator.deallocate;
    batch.external = std::shared_ptr<float>(memory, [deallocate, count](float* p) { deallocate(p, count); });
  } else {
    staging.resize(count);
    batch.images = std::move(staging);
  }
  return batch;
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  DP_CHECK(epoch_ >= 0, "Loader::next() called before start_epoch()", "call start_epoch(epoch) first");
  if (next_to_return_ >= num_batches()) return std::nullopt;
  ready_cv_.wait(lock, [&] {
    auto it = slots_.find(next_to_return_);
    return stopping_ || (it != slots_.end() && it->second.ready);
  });
  DP_CHECK(!stopping_, "loader was stopped", "do not call next() while the loader shuts down");
  Slot slot = std::move(slots_[next_to_return_]);
  slots_.erase(next_to_return_);
  ++next_to_return_;
  lock.unlock();
  work_cv_.notify_all();
  if (slot.error) std::rethrow_exception(slot.error);
  if (slot.batch)
    for (const SkippedSample& s : slot.batch->skipped_samples) epoch_skips_.add(s);
  return std::move(slot.batch);
}

}  // namespace dp::data
