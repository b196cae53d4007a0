// One commit per save (issue 20): a process killed at any point of a save leaves, once
// recover_commit() has run, either every file of the previous save or every file of the new one:
// checkpoint.h5 and best.h5 agree on the best epoch, retained copies match, nothing staged remains.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "app/checkpoint_commit.h"
#include "app/checkpoint_schema.h"
#include "engine/error.h"
#include "tests/app/checkpoint_fixture.h"

using namespace dp;
namespace fs = std::filesystem;

namespace {

io::TensorFile checkpoint_of_epoch(int64_t epoch) {
  app::Checkpoint c = fixture::small_checkpoint();
  c.progress.epoch = epoch;
  c.progress.global_step = 10 * epoch;
  c.progress.best_epoch = epoch;
  c.progress.best_val_top1 = 40.0 + epoch;
  return app::encode_checkpoint(c);
}

int64_t epoch_of(const std::string& path) { return app::read_checkpoint(path).progress.epoch; }

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& f : fs::directory_iterator(dir)) out.insert(f.path().filename().string());
  return out;
}

// The folder after epoch 1's save: checkpoint.h5, best.h5 and the retained copy of epoch 1.
std::string folder_after_epoch_1() {
  const std::string dir = fixture::temp_dir("dp-commit");
  app::commit_checkpoint(dir, checkpoint_of_epoch(1), {{"checkpoint.h5", "best.h5", "checkpoint-epoch0001.h5"}, {}});
  return dir;
}

// Epoch 2 improves: checkpoint.h5, best.h5 and epoch 2's copy, and epoch 1's copy goes.
const app::CommitPlan kEpoch2 = {{"checkpoint.h5", "best.h5", "checkpoint-epoch0002.h5"}, {"checkpoint-epoch0001.h5"}};

}  // namespace

TEST(CheckpointCommit, AKillAtEachPointLeavesAConsistentSet) {
  const std::vector<std::string> points = {"staging", "staged", "linked", "journal", "renamed checkpoint.h5",
                                           "renamed best.h5", "renamed checkpoint-epoch0002.h5", "removed",
                                           "committed"};
  std::set<int64_t> outcomes;
  for (const std::string& point : points) {
    SCOPED_TRACE("killed at '" + point + "'");
    const std::string dir = folder_after_epoch_1();
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      app::commit_checkpoint(dir, checkpoint_of_epoch(2), kEpoch2, [&](const std::string& p) {
        if (p == point) _exit(0);  // no destructor, no flush: as a kill -9 there
      });
      _exit(1);  // the point was never reached
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the save never reached the point";
    app::recover_commit(dir);
    const int64_t epoch = epoch_of(dir + "/checkpoint.h5");
    outcomes.insert(epoch);
    EXPECT_EQ(epoch_of(dir + "/best.h5"), epoch) << "best.h5 and checkpoint.h5 disagree";
    const std::set<std::string> want =
        epoch == 1 ? std::set<std::string>{"checkpoint.h5", "best.h5", "checkpoint-epoch0001.h5"}
                   : std::set<std::string>{"checkpoint.h5", "best.h5", "checkpoint-epoch0002.h5"};
    EXPECT_EQ(files_in(dir), want);
    if (epoch == 2) {
      EXPECT_EQ(epoch_of(dir + "/checkpoint-epoch0002.h5"), 2);
    }
    fs::remove_all(dir);
  }
  EXPECT_EQ(outcomes, (std::set<int64_t>{1, 2})) << "before the journal: the old set; from it on: the new one";
}

// A kill during the write of the staged file leaves its temporary (removed by
// io::remove_stale_temporaries at start-up); the previous set is untouched.
TEST(CheckpointCommit, AKillDuringTheWriteChangesNothing) {
  const std::string dir = folder_after_epoch_1();
  std::ofstream(dir + "/.staged.checkpoint.h5.tmp.999999") << "half an HDF5 file";
  std::ofstream(dir + "/.staged.checkpoint.h5") << "a staged file never journalled";
  EXPECT_NE(app::recover_commit(dir), "");
  EXPECT_EQ(epoch_of(dir + "/checkpoint.h5"), 1);
  EXPECT_EQ(epoch_of(dir + "/best.h5"), 1);
  EXPECT_FALSE(fs::exists(dir + "/.staged.checkpoint.h5"));
  EXPECT_EQ(app::recover_commit(dir), "") << "nothing left to do";
  fs::remove_all(dir);
}

// A save that fails (a folder takes the name the staged checkpoint needs, or, once the
// checkpoint is staged, the name of its link to best.h5: as a full or read-only disk would fail
// them) throws naming the file; the previous set stays and nothing staged is left behind.
TEST(CheckpointCommit, AFailedSaveKeepsThePreviousSet) {
  const std::set<std::string> previous = {"checkpoint.h5", "best.h5", "checkpoint-epoch0001.h5"};
  for (const std::string& when : std::vector<std::string>{"staging", "staged"}) {
    SCOPED_TRACE("a folder in the way from '" + when + "' on");
    const std::string dir = folder_after_epoch_1();
    const std::string blocker = dir + (when == "staging" ? "/.staged.checkpoint.h5" : "/.staged.best.h5");
    EXPECT_THROW(app::commit_checkpoint(dir, checkpoint_of_epoch(2), kEpoch2,
                                        [&](const std::string& point) {
                                          if (point == when) fs::create_directories(blocker);
                                        }),
                 Error);
    fs::remove(blocker);
    EXPECT_EQ(files_in(dir), previous) << "something staged was left behind";
    EXPECT_EQ(app::recover_commit(dir), "");
    EXPECT_EQ(epoch_of(dir + "/checkpoint.h5"), 1);
    EXPECT_EQ(epoch_of(dir + "/best.h5"), 1);
    fs::remove_all(dir);
  }
}
