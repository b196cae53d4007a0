// Sharded evaluation (app/evaluate.h) on 2 ranks against one process: every rank also runs
// the single-process evaluation of the whole set and compares. The set (203 samples, batch 16) is
// not a multiple of ranks × batch, so the shares are uneven and each ends in a partial batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "data/dataset_slice.h"
#include "data/synthetic.h"
#include "dist/communicator.h"
#include "dist/process_group.h"
#include "nets/registry.h"
#include "app/evaluate.h"

namespace dp::app {
namespace {

constexpr int64_t kSamples = 203, kBatch = 16, kClasses = 10;

std::shared_ptr<const data::Dataset> validation_set() {
  data::SyntheticOptions o;
  o.size = kSamples;
  o.num_classes = kClasses;
  o.height = o.width = 16;
  o.seed = 5;
  o.split = 1;
  return std::make_shared<data::SyntheticDataset>(o);
}

EvalResult run(layers::Module& model, dist::Communicator* ranks, bool per_sample) {
  return evaluate(model, validation_set(), data::cifar_test_transform(), kBatch, /*workers=*/1, Device::cpu(),
                  MemoryFormat::Contiguous, per_sample, ranks);
}

void expect_same_counts(const EvalResult& got, const EvalResult& want) {
  EXPECT_EQ(got.count, want.count);
  EXPECT_EQ(got.top1, want.top1);  // the same integer counts over the same count
  EXPECT_EQ(got.top5, want.top5);
  EXPECT_EQ(got.confusion, want.confusion);
  ASSERT_EQ(got.per_class_accuracy.size(), want.per_class_accuracy.size());
  for (size_t c = 0; c < want.per_class_accuracy.size(); ++c)
    if (!std::isnan(want.per_class_accuracy[c])) {
      EXPECT_EQ(got.per_class_accuracy[c], want.per_class_accuracy[c]);
    }
  EXPECT_NEAR(got.loss, want.loss, 1e-6 * std::abs(want.loss)) << "only the loss's summation order differs";
}

class ShardedEvaluation : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!dist::process_group().distributed())
      GTEST_SKIP() << "needs 2 ranks: run under mpirun -np 2 (meson test dist_sharded_evaluate_2ranks)";
    comm = dist::make_communicator(Device::cpu(), 120.0);
    model = nets::make_net("tiny-cnn", kClasses, /*seed=*/7);
  }
  std::unique_ptr<dist::Communicator> comm;
  layers::ModulePtr model;
};

TEST_F(ShardedEvaluation, EachRankEvaluatesItsShareAndEveryRankGetsTheWholeSetsResult) {
  const EvalResult want = run(*model, nullptr, /*per_sample=*/true);
  const EvalResult got = run(*model, comm.get(), /*per_sample=*/true);
  ASSERT_EQ(want.count, kSamples);
  ASSERT_NE(want.top1, 0.0) << "a model that gets nothing right would hide a lost top-1 count";
  expect_same_counts(got, want);

  // This rank ran only its share through the model; the shares add up to every sample once.
  const int world = comm->world_size(), rank = comm->rank();
  EXPECT_EQ(want.evaluated_here, kSamples);
  EXPECT_EQ(got.evaluated_here, data::share_begin(kSamples, rank + 1, world) - data::share_begin(kSamples, rank, world));
  Tensor here = Tensor::from_vector(std::vector<int64_t>{got.evaluated_here}, {1});
  comm->all_reduce(here);
  EXPECT_EQ(here.data<int64_t>()[0], kSamples) << "the ranks' shares must cover the set exactly once";

  // Per sample, by dataset index. A sample's logits can differ in the last bits with the batch it
  // sits in (the CPU GEMM's blocking; measured: 5 of the 203 losses, by at most ~1e-7 relative),
  // so the losses are compared to 1e-6; no prediction changes.
  EXPECT_EQ(got.sample_prediction, want.sample_prediction);
  ASSERT_EQ(got.sample_loss.size(), want.sample_loss.size());
  double worst = 0;
  for (size_t i = 0; i < want.sample_loss.size(); ++i) {
    ASSERT_FALSE(std::isnan(got.sample_loss[i])) << "sample " << i << " has no loss: no rank evaluated it";
    worst = std::max(worst, std::abs(double(got.sample_loss[i]) - want.sample_loss[i]) / std::abs(want.sample_loss[i]));
  }
  EXPECT_LT(worst, 1e-6) << "the largest relative difference of a sample's loss";
  std::printf("largest relative difference of a sample's loss: %.3g\n", worst);

  // The same bits on every rank (the trainer's best-checkpoint decision runs on each).
  Tensor mine = Tensor::from_vector(std::vector<double>{got.loss, got.top1, got.top5}, {1, 3});
  const Tensor all = comm->all_gather(mine, std::vector<int64_t>(static_cast<size_t>(world), 1));
  for (int r = 1; r < world; ++r)
    for (int k = 0; k < 3; ++k) EXPECT_EQ(all.data<double>()[r * 3 + k], all.data<double>()[k]) << "rank " << r;
}

TEST_F(ShardedEvaluation, WithoutPerSampleArraysAsInTheTrainer) {
  const EvalResult got = run(*model, comm.get(), /*per_sample=*/false);
  expect_same_counts(got, run(*model, nullptr, /*per_sample=*/false));
  EXPECT_TRUE(got.sample_loss.empty());
  EXPECT_TRUE(got.sample_prediction.empty());
}

TEST(ShardedEvaluationOneProcess, AOneRankCommunicatorEvaluatesEverything) {
  if (dist::process_group().distributed()) GTEST_SKIP() << "started by a launcher: the one-process case runs without mpirun";
  auto comm = dist::make_communicator(Device::cpu(), 120.0);
  layers::ModulePtr model = nets::make_net("tiny-cnn", kClasses, /*seed=*/7);
  const EvalResult want = run(*model, nullptr, true), got = run(*model, comm.get(), true);
  EXPECT_EQ(got.evaluated_here, kSamples);
  EXPECT_EQ(got.loss, want.loss);  // one share, the same batches: the same sum
  expect_same_counts(got, want);
  EXPECT_EQ(got.sample_prediction, want.sample_prediction);
}

}  // namespace
}  // namespace dp::app
