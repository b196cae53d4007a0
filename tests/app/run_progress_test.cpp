// The run-progress part of a checkpoint: an epoch-end position writes only the attributes it
// always wrote; a mid-epoch one adds the position and the epoch's sums per rank, which a job of
// another size resumes as one rank's.
#include <gtest/gtest.h>

#include "app/run_progress.h"
#include "engine/error.h"
#include "tests/common/memory_state.h"

using namespace dp;

TEST(RunProgress, EpochEndWritesNoMidEpochPart) {
  app::RunProgress p;
  p.epoch = 3;
  p.global_step = 36;
  p.seed = 7;
  p.best_val_top1 = 55.5;
  p.best_epoch = 2;
  fixture::MemoryState m;
  p.save(m);
  EXPECT_TRUE(m.tensors.empty());
  EXPECT_EQ(m.ints.count("epoch_step"), 0u);
  app::RunProgress back;
  back.load(m);
  EXPECT_EQ(back.epoch, 3);
  EXPECT_EQ(back.global_step, 36);
  EXPECT_EQ(back.seed, 7);
  EXPECT_EQ(back.best_val_top1, 55.5);
  EXPECT_EQ(back.best_epoch, 2);
  EXPECT_FALSE(back.mid_epoch());
}

TEST(RunProgress, MidEpochSumsPerRank) {
  app::RunProgress p;
  p.epoch = 1;
  p.global_step = 17;
  p.epoch_step = 5;
  p.epoch_seconds = 2.5;
  p.ranks = {{{10.25, 3, 9, 80}, 1}, {{11.5, 4, 8, 80}, 0}};
  p.skipped_first.add({12, "a.jpg", "not a JPEG"});
  fixture::MemoryState m;
  p.save(m);
  app::RunProgress back;
  back.load(m);
  EXPECT_TRUE(m.untaken().empty());
  ASSERT_EQ(back.ranks.size(), 2u);
  EXPECT_EQ(back.epoch_step, 5);
  EXPECT_EQ(back.epoch_seconds, 2.5);
  EXPECT_EQ(back.ranks[1].totals.loss_sum, 11.5);
  EXPECT_EQ(back.ranks[0].skipped, 1);
  ASSERT_EQ(back.skipped_first.first.size(), 1u);
  EXPECT_EQ(back.skipped_first.first[0].source, "a.jpg");
  // The same job size: each rank its own; another: rank 0 the sum, the others nothing.
  EXPECT_EQ(back.resumed_sums(1, 2).totals.top1, 4);
  EXPECT_EQ(back.resumed_sums(0, 1).totals.loss_sum, 21.75);
  EXPECT_EQ(back.resumed_sums(0, 1).totals.samples, 160);
  EXPECT_EQ(back.resumed_sums(0, 1).skipped, 1);
  EXPECT_EQ(back.resumed_sums(2, 3).totals.samples, 0);
  // A mid-epoch position without its sums is refused, naming what is missing.
  m.tensors.erase("progress/epoch_so_far");
  try {
    back.load(m);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/progress/epoch_so_far"), std::string::npos) << e.what();
  }
}
