#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "data/loader.h"
#include "data/synthetic.h"
#include "engine/error.h"
#include "tests/data/data_test_util.h"

using namespace dp::data;

static std::shared_ptr<SyntheticDataset> synthetic(int64_t size) {
  SyntheticOptions options;
  options.size = size;
  options.seed = 11;
  return std::make_shared<SyntheticDataset>(options);
}

static std::vector<Batch> run_epoch(Loader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> batches;
  while (auto batch = loader.next()) batches.push_back(std::move(*batch));
  return batches;
}

TEST(Loader, SameBatchesForAnyThreadCount) {
  auto ds = synthetic(203);
  std::vector<std::vector<Batch>> runs;
  for (int64_t workers : {1, 2, 5}) {
    LoaderOptions options;
    options.batch_size = 16;
    options.seed = 42;
    options.num_workers = workers;
    Loader loader(ds, Transform(cifar_train_transform()), options);
    runs.push_back(run_epoch(loader, 3));
  }
  ASSERT_EQ(runs[0].size(), 13u);  // 12 full + 1 partial batch of 11 (last batch kept)
  EXPECT_EQ(runs[0].back().n, 11);
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    for (size_t b = 0; b < runs[0].size(); ++b) {
      EXPECT_EQ(runs[r][b].indices, runs[0][b].indices);
      EXPECT_EQ(runs[r][b].labels, runs[0][b].labels);
      EXPECT_EQ(runs[r][b].images, runs[0][b].images);
    }
  }
  const Batch& first = runs[0][0];
  EXPECT_EQ(first.c, 3);
  EXPECT_EQ(first.h, 32);
  EXPECT_EQ(first.images.size(), static_cast<size_t>(16 * 3 * 32 * 32));
  for (int64_t k = 0; k < first.n; ++k) EXPECT_EQ(first.labels[k], ds->label(first.indices[k]));
}

TEST(Loader, EpochsShuffleDifferentlyAndDropLast) {
  auto ds = synthetic(100);
  LoaderOptions options;
  options.batch_size = 32;
  options.num_workers = 2;
  options.drop_last = true;
  Loader loader(ds, Transform(cifar_test_transform()), options);
  EXPECT_EQ(loader.num_batches(), 3);
  const auto e0 = run_epoch(loader, 0), e1 = run_epoch(loader, 1);
  ASSERT_EQ(e0.size(), 3u);
  EXPECT_NE(e0[0].indices, e1[0].indices);
  EXPECT_EQ(run_epoch(loader, 0)[1].indices, e0[1].indices);
}

TEST(Loader, ShardsCoverTheDatasetExactlyOnce) {
  auto ds = synthetic(104);  // 11 global batches of 9, then 5 samples: slices 2, 2, 1
  std::multiset<int64_t> seen;
  for (int64_t rank = 0; rank < 3; ++rank) {
    LoaderOptions options;
    options.batch_size = 9;
    options.num_workers = 2;
    options.rank = rank;
    options.world_size = 3;
    options.seed = 9;
    Loader loader(ds, Transform(cifar_test_transform()), options);
    EXPECT_EQ(loader.shard_size(), rank < 2 ? 35 : 34);
    EXPECT_EQ(loader.num_batches(), 12);
    for (const auto& b : run_epoch(loader, 4)) seen.insert(b.indices.begin(), b.indices.end());
  }
  ASSERT_EQ(seen.size(), 104u);
  for (int64_t i = 0; i < 104; ++i) EXPECT_EQ(seen.count(i), 1u) << i;
}

// The data-parallel contract: optim.batch_size is the global batch, and the ranks' batch k
// concatenated in rank order is the single process's batch k, sample for sample and pixel for
// pixel, in the same order (so the per-row θ gradients gathered in rank order are in global
// batch order).
TEST(Loader, RanksTogetherAreTheSingleProcessBatchInGlobalOrder) {
  for (int64_t size : {int64_t{70}, int64_t{64}, int64_t{67}}) {  // partial last batch 6, none, 3 (< 4: dropped)
    auto ds = synthetic(size);
    LoaderOptions one;
    one.batch_size = 16;
    one.num_workers = 2;
    one.seed = 5;
    Loader single(ds, Transform(cifar_train_transform()), one);
    const auto whole = run_epoch(single, 2);
    std::vector<std::vector<Batch>> per_rank;
    for (int64_t rank = 0; rank < 4; ++rank) {
      LoaderOptions o = one;
      o.rank = rank;
      o.world_size = 4;
      o.num_workers = 1 + rank % 2;  // thread count must not matter
      Loader loader(ds, Transform(cifar_train_transform()), o);
      EXPECT_EQ(loader.local_batch_size(), 4);
      per_rank.push_back(run_epoch(loader, 2));
    }
    const size_t batches = size == 67 ? whole.size() - 1 : whole.size();
    for (const auto& r : per_rank) ASSERT_EQ(r.size(), batches) << "every rank takes the same number of steps";
    for (size_t k = 0; k < batches; ++k) {
      std::vector<int64_t> indices, labels;
      std::vector<float> pixels;
      for (const auto& r : per_rank) {
        EXPECT_GT(r[k].n, 0) << "no rank has an empty batch";
        indices.insert(indices.end(), r[k].indices.begin(), r[k].indices.end());
        labels.insert(labels.end(), r[k].labels.begin(), r[k].labels.end());
        const size_t count = static_cast<size_t>(r[k].n * r[k].c * r[k].h * r[k].w);
        pixels.insert(pixels.end(), r[k].data(), r[k].data() + count);
      }
      EXPECT_EQ(indices, whole[k].indices) << "size " << size << " batch " << k;
      EXPECT_EQ(labels, whole[k].labels);
      const size_t count = static_cast<size_t>(whole[k].n * whole[k].c * whole[k].h * whole[k].w);
      EXPECT_TRUE(pixels == std::vector<float>(whole[k].data(), whole[k].data() + count)) << "batch " << k;
    }
  }
}

TEST(Loader, BatchNotDivisibleByTheRanksIsRefused) {
  LoaderOptions o;
  o.batch_size = 10;
  o.world_size = 4;
  try {
    Loader loader(synthetic(40), Transform(cifar_test_transform()), o);
    FAIL() << "a global batch of 10 over 4 ranks must be refused";
  } catch (const dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not divisible"), std::string::npos) << e.what();
  }
}

// A dataset whose samples listed in `bad` fail to load, like corrupt files; `delay` slows loads.
class FlakyDataset final : public Dataset {
 public:
  FlakyDataset(std::shared_ptr<Dataset> base, std::set<int64_t> bad, std::chrono::milliseconds delay = {},
               std::vector<uint8_t> bad_bytes = {0xFF, 0xD8, 0xFF, 0xE0, 0x00})  // a truncated JPEG
      : base_(std::move(base)), bad_(std::move(bad)), delay_(delay), bad_bytes_(std::move(bad_bytes)) {}
  int64_t size() const override { return base_->size(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  int64_t label(int64_t i) const override { return base_->label(i); }
  RawSample load(int64_t i) const override {
    if (delay_.count()) std::this_thread::sleep_for(delay_);
    if (bad_.count(i)) {
      RawSample s;
      s.index = i;
      s.source = "/fake/bad_" + std::to_string(i) + ".jpg";
      s.encoded = bad_bytes_;
      return s;
    }
    return base_->load(i);
  }
  std::string source(int64_t i) const override { return base_->source(i); }

 private:
  std::shared_ptr<Dataset> base_;
  std::set<int64_t> bad_;
  std::chrono::milliseconds delay_;
  std::vector<uint8_t> bad_bytes_;
};

TEST(Loader, SkipPolicyCountsBadSamples) {
  auto ds = std::make_shared<FlakyDataset>(synthetic(50), std::set<int64_t>{3, 17, 40});
  LoaderOptions options;
  options.batch_size = 10;
  options.num_workers = 3;
  options.bad_samples = BadSamplePolicy::kSkip;
  Loader loader(ds, Transform(cifar_test_transform()), options);
  int64_t total = 0, skipped = 0;
  for (const auto& b : run_epoch(loader, 0)) {
    total += b.n;
    skipped += b.skipped;
    for (int64_t idx : b.indices) EXPECT_TRUE(idx != 3 && idx != 17 && idx != 40);
    EXPECT_EQ(b.images.size(), static_cast<size_t>(b.n * 3 * 32 * 32));
  }
  EXPECT_EQ(total, 47);
  EXPECT_EQ(skipped, 3);
  EXPECT_EQ(loader.skipped_total(), 3);
  // The epoch's report names each skipped file and why it was dropped.
  const SkipReport& report = loader.epoch_skips();
  EXPECT_EQ(report.count, 3);
  ASSERT_EQ(report.first.size(), 3u);
  std::set<int64_t> named;
  for (const SkippedSample& s : report.first) {
    named.insert(s.index);
    EXPECT_EQ(s.source, "/fake/bad_" + std::to_string(s.index) + ".jpg");
    EXPECT_FALSE(s.reason.empty());
  }
  EXPECT_EQ(named, (std::set<int64_t>{3, 17, 40}));
  loader.start_epoch(1);
  EXPECT_EQ(loader.epoch_skips().count, 0) << "the report is per epoch";
}

// Issue 13: a JPEG without SOF (header size 0x0) killed the run with SIGFPE in the training
// transform's crop geometry, even under the skip policy.
TEST(Loader, JpegsWithZeroDimensionsAreSkippedOrNamed) {
  const std::vector<uint8_t> good = tu::make_jpeg(40, 40);
  for (const auto& bytes : {tu::jpeg_tables_only(good), tu::jpeg_without_sof(good), tu::jpeg_with_sof_size(good, 0, 40)}) {
    auto ds = std::make_shared<FlakyDataset>(synthetic(12), std::set<int64_t>{5}, std::chrono::milliseconds{}, bytes);
    LoaderOptions options;
    options.batch_size = 4;
    options.num_workers = 2;
    options.shuffle = false;
    options.bad_samples = BadSamplePolicy::kSkip;
    Loader skipping(ds, Transform(imagenet_train_transform(32)), options);
    EXPECT_EQ(run_epoch(skipping, 0).size(), 3u);
    EXPECT_EQ(skipping.skipped_total(), 1);
    options.bad_samples = BadSamplePolicy::kFail;
    Loader failing(ds, Transform(imagenet_train_transform(32)), options);
    try {
      run_epoch(failing, 0);
      ADD_FAILURE() << "a JPEG with zero dimensions was accepted";
    } catch (const dp::Error& e) {
      EXPECT_NE(std::string(e.what()).find("/fake/bad_5.jpg"), std::string::npos) << e.what();
    }
  }
}

TEST(Loader, FailPolicyNamesTheFile) {
  auto ds = std::make_shared<FlakyDataset>(synthetic(20), std::set<int64_t>{7});
  LoaderOptions options;
  options.batch_size = 4;
  options.num_workers = 2;
  options.shuffle = false;
  Loader loader(ds, Transform(cifar_test_transform()), options);
  loader.start_epoch(0);
  ASSERT_TRUE(loader.next().has_value());
  try {
    loader.next();  // batch 1 holds sample 7
    FAIL() << "bad sample not reported";
  } catch (const dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/fake/bad_7.jpg"), std::string::npos) << e.what();
  }
}

TEST(Loader, ShutdownMidEpochDoesNotHang) {
  auto ds = std::make_shared<FlakyDataset>(synthetic(4000), std::set<int64_t>{}, std::chrono::milliseconds(2));
  LoaderOptions options;
  options.batch_size = 64;
  options.num_workers = 4;
  const auto start = std::chrono::steady_clock::now();
  {
    Loader loader(ds, Transform(cifar_train_transform()), options);
    loader.start_epoch(0);
    ASSERT_TRUE(loader.next().has_value());
  }  // destructor with workers busy and the prefetch window full
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 2.0);
}

TEST(Loader, CustomAllocatorHook) {
  auto ds = synthetic(10);
  std::atomic<int> live{0};
  LoaderOptions options;
  options.batch_size = 4;
  options.num_workers = 1;
  options.allocator.allocate = [&](size_t n) { ++live; return new float[n]; };
  options.allocator.deallocate = [&](float* p, size_t) { --live; delete[] p; };
  {
    Loader loader(ds, Transform(cifar_test_transform()), options);
    auto batches = run_epoch(loader, 0);
    ASSERT_EQ(batches.size(), 3u);
    EXPECT_TRUE(batches[0].images.empty());
    EXPECT_NE(batches[0].data(), nullptr);
    EXPECT_EQ(live.load(), 3);
  }
  EXPECT_EQ(live.load(), 0);
}

// A run resumed mid-epoch (issue 20) starts the epoch at a batch: the batches from there on are
// those of the epoch started at 0, pixels included; a batch past the epoch is refused.
TEST(Loader, StartsAnEpochAtABatch) {
  auto ds = synthetic(203);
  LoaderOptions options;
  options.batch_size = 16;
  options.seed = 42;
  options.num_workers = 2;
  Loader loader(ds, Transform(cifar_train_transform()), options);
  const std::vector<Batch> whole = run_epoch(loader, 2);
  loader.start_epoch(2, 5);
  std::vector<Batch> rest;
  while (auto batch = loader.next()) rest.push_back(std::move(*batch));
  ASSERT_EQ(rest.size(), whole.size() - 5);
  for (size_t b = 0; b < rest.size(); ++b) {
    EXPECT_EQ(rest[b].indices, whole[b + 5].indices) << b;
    EXPECT_EQ(rest[b].images, whole[b + 5].images) << b;
  }
  loader.start_epoch(2, loader.num_batches());
  EXPECT_FALSE(loader.next().has_value()) << "started at the end: nothing left";
  EXPECT_THROW(loader.start_epoch(2, loader.num_batches() + 1), dp::Error);
}
