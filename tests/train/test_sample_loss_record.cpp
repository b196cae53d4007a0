// The per-sample training-loss record (train/sample_loss_record.h) on the CPU: sums and counts
// by dataset index, the mean, loading, and that TrainStep feeds it each row's loss of the step.
// The CUDA record against this one: tests/cuda/test_train_loop.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/error.h"
#include "engine/rng.h"
#include "nets/registry.h"
#include "train/sample_loss_record.h"
#include "train/train_step.h"

using namespace dp;

namespace {

template <class T>
Tensor vec(const std::vector<T>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
}

}  // namespace

TEST(SampleLossRecord, SumsCountsAndMeansByIndex) {
  train::SampleLossRecord r(5, Device::cpu());
  r.add(vec<int64_t>({3, 0, 4}), vec<float>({1.5f, 2.0f, 0.25f}));
  r.add(vec<int64_t>({0, 3}), vec<double>({4.0, 0.5}));  // float64 rows (a float64 net) are rounded
  EXPECT_EQ(r.sum().to_float_vector(), (std::vector<float>{6.0f, 0.f, 0.f, 2.0f, 0.25f}));
  EXPECT_EQ(r.count().to_float_vector(), (std::vector<float>{2.f, 0.f, 0.f, 2.f, 1.f}));
  const std::vector<float> m = r.mean();
  EXPECT_EQ(m[0], 3.0f);
  EXPECT_TRUE(std::isnan(m[1])) << "a sample no step has seen has no mean";
  EXPECT_EQ(m[3], 1.0f);
  EXPECT_EQ(m[4], 0.25f);
  r.add(vec<int64_t>({}), vec<float>({}));  // an empty batch changes nothing
  EXPECT_EQ(r.count().to_float_vector()[0], 2.f);
  r.add(vec<int64_t>({1, 2, 3, 4}), vec<float>({1.f, 1.f, 1.f, 1.f}));  // a larger batch than before
  EXPECT_EQ(r.count().to_float_vector(), (std::vector<float>{2.f, 1.f, 1.f, 3.f, 2.f}));
}

TEST(SampleLossRecord, LoadKeepsTheBuffersAndChecksTheSize) {
  train::SampleLossRecord r(3, Device::cpu());
  const void* buffer = r.sum().raw_data();
  r.load(vec<float>({3.f, 4.f, 5.f}), vec<float>({1.f, 2.f, 0.f}));
  EXPECT_EQ(r.sum().raw_data(), buffer) << "a captured step writes the same buffer after a resume";
  EXPECT_EQ(r.mean()[1], 2.f);
  EXPECT_THROW(r.load(vec<float>({1.f}), vec<float>({1.f})), Error);
}

// One step's record holds each batch row's loss: their mean is the step's loss (no weight
// decay, so the logged loss is the mean row loss), at the batch's dataset indices only.
TEST(SampleLossRecord, TrainStepRecordsEachRowsLoss) {
  auto net = nets::make_net("tiny-cnn", 4, 3);
  train::DataParamConfig dc;
  dc.learn_inst_parameters = true;
  train::DataParameters params(dc, 4, 40);
  train::SGD sgd(net->parameters(), {0.05, 0.9, 0.0, false});
  train::TrainStep step(*net, sgd, params);
  train::SampleLossRecord record(40, Device::cpu());
  step.record_sample_losses(&record);
  const std::vector<int64_t> rows{7, 19, 2, 33, 11, 28};
  train::BatchTensors b;
  std::vector<float> pixels(rows.size() * 3 * 12 * 12);
  Rng rng(5, 0);
  for (float& p : pixels) p = static_cast<float>(rng.uniform(-1, 1));
  b.images = Tensor::from_vector(pixels, {static_cast<int64_t>(rows.size()), 3, 12, 12});
  b.labels = vec<int64_t>({0, 1, 2, 3, 0, 1});
  b.indices = vec(rows);
  step.run(b, 0.05);
  const std::vector<float> sum = record.sum().to_float_vector(), count = record.count().to_float_vector();
  double total = 0;
  for (size_t i = 0; i < sum.size(); ++i) {
    const bool in_batch = std::find(rows.begin(), rows.end(), static_cast<int64_t>(i)) != rows.end();
    EXPECT_EQ(count[i], in_batch ? 1.f : 0.f) << i;
    if (in_batch) {
      EXPECT_GT(sum[i], 0.f) << i;
    }
    total += sum[i];
  }
  EXPECT_NEAR(total / static_cast<double>(rows.size()), step.totals().loss_sum / static_cast<double>(rows.size()),
              1e-5);
  // Without dataset indices (a benchmark's batches) the step runs and records nothing.
  b.indices = Tensor();
  dc.learn_inst_parameters = false;
  train::DataParameters plain(dc, 4, 40);
  train::TrainStep no_ids(*net, sgd, plain);
  no_ids.record_sample_losses(&record);
  no_ids.run(b, 0.05);
  EXPECT_EQ(record.count().to_float_vector(), count);
}
