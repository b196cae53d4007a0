// Long runs (issue 20), in process: a stop signal at a random step of a random epoch, then
// --resume auto, ends bit for bit where an uninterrupted run ends (model, BN, momenta, θ and
// their momenta, σ histories), with metrics.jsonl and TensorBoard holding each step once; the
// same after a crash following a mid-epoch checkpoint; mid-epoch checkpoints change nothing;
// --resume auto starts afresh in a folder without a checkpoint; a second signal ends the process.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "app/checkpoint_schema.h"
#include "app/stop_signals.h"
#include "engine/error.h"
#include "io/checkpoint_file.h"
#include "io/event_file.h"
#include "tests/app/trainer_util.h"

using namespace dp;
using namespace dp::fixture;
using app::Trainer;
using app::TrainerOptions;

namespace {

// 3 epochs of 12 steps.
constexpr int64_t kSteps = 36;

std::vector<std::string> run_keys(std::vector<std::string> extra = {}) {
  std::vector<std::string> k = {"run.epochs=3", "run.print_freq=1", "run.stop_signals=USR1"};
  k.insert(k.end(), extra.begin(), extra.end());
  return k;
}

// metrics.jsonl's lines without the wall-clock field.
std::vector<std::string> metrics_of(const std::string& folder) {
  std::vector<std::string> out;
  std::ifstream in(folder + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    j.erase("seconds");
    out.push_back(j.dump());
  }
  return out;
}

// (tag, step) -> how many times TensorBoard events in folder/tb hold it.
std::map<std::pair<std::string, int64_t>, int> events_of(const std::string& folder) {
  std::map<std::pair<std::string, int64_t>, int> out;
  for (const auto& f : std::filesystem::directory_iterator(folder + "/tb"))
    for (const io::EventEntry& e : io::read_event_entries(f.path().string()))
      if (!e.tag.empty()) ++out[{e.tag, e.step}];
  return out;
}

void expect_logs_like(const std::string& straight, const std::string& resumed) {
  EXPECT_EQ(metrics_of(resumed), metrics_of(straight)) << "metrics.jsonl: each line once, as the uninterrupted run's";
  const auto a = events_of(straight), b = events_of(resumed);
  EXPECT_EQ(a.size(), b.size());
  for (const auto& [key, count] : b) {
    EXPECT_EQ(count, 1) << key.first << " at step " << key.second << " is logged " << count << " times";
    EXPECT_TRUE(a.count(key)) << key.first << " at step " << key.second << " is not in the uninterrupted run";
  }
}

int64_t random_step() {
  std::random_device device;
  return std::uniform_int_distribution<int64_t>(1, kSteps - 1)(device);
}

}  // namespace

TEST(LongRun, AStopSignalAtARandomStepThenResumeAutoIsBitIdentical) {
  const std::string dir = temp_dir();
  Trainer straight(small_config(dir + "/straight", run_keys()), quiet());
  straight.run();
  const int64_t k = random_step();
  SCOPED_TRACE("stop signal after global step " + std::to_string(k));
  {
    TrainerOptions o = quiet();
    o.handle_stop_signals = true;
    o.after_step = [k](const Trainer& t) {
      if (t.global_step() == k) std::raise(SIGUSR1);
    };
    Trainer first(small_config(dir + "/split", run_keys()), o);
    const app::RunSummary s = first.run();
    EXPECT_TRUE(s.stopped);
    EXPECT_EQ(s.stop_signal, SIGUSR1);
    EXPECT_EQ(first.global_step(), k) << "stops at the step boundary right after the signal";
    const app::Checkpoint c = app::read_checkpoint(dir + "/split/checkpoint.h5");
    EXPECT_EQ(c.progress.global_step, k);
    EXPECT_EQ(c.progress.epoch * 12 + c.progress.epoch_step, k);
  }
  TrainerOptions resume = quiet();
  resume.resume = "auto";
  Trainer second(small_config(dir + "/split", run_keys()), resume);
  EXPECT_EQ(second.resumed_from(), dir + "/split/checkpoint.h5");
  EXPECT_EQ(second.global_step(), k);
  second.run();
  expect_same_run_state(straight, second);
  expect_logs_like(dir + "/straight", dir + "/split");
  std::filesystem::remove_all(dir);
}

// A crash (here an exception after step k) loses only the steps after the last mid-epoch
// checkpoint; --resume auto continues from it, and the lines the crashed run logged after it
// are not repeated.
TEST(LongRun, ACrashAfterAMidEpochCheckpointResumesThere) {
  const std::string dir = temp_dir();
  const std::vector<std::string> keys = run_keys({"run.checkpoint_every=5 steps"});
  Trainer straight(small_config(dir + "/straight", keys), quiet());
  straight.run();
  const int64_t k = std::max<int64_t>(random_step(), 6);
  SCOPED_TRACE("crash after global step " + std::to_string(k));
  {
    TrainerOptions o = quiet();
    o.after_step = [k](const Trainer& t) {
      if (t.global_step() == k) DP_THROW("simulated crash", "test");
    };
    Trainer first(small_config(dir + "/split", keys), o);
    EXPECT_THROW(first.run(), Error);
  }
  const app::Checkpoint c = app::read_checkpoint(dir + "/split/checkpoint.h5");
  EXPECT_GE(c.progress.global_step, k - 5) << "at most run.checkpoint_every steps lost";
  EXPECT_LT(c.progress.global_step, k);
  TrainerOptions resume = quiet();
  resume.resume = "auto";
  Trainer second(small_config(dir + "/split", keys), resume);
  EXPECT_EQ(second.global_step(), c.progress.global_step);
  second.run();
  expect_same_run_state(straight, second);
  expect_logs_like(dir + "/straight", dir + "/split");
  std::filesystem::remove_all(dir);
}

// Mid-epoch checkpoints are snapshots: a run that writes one every 2 steps ends bit for bit as
// one that writes none.
TEST(LongRun, MidEpochCheckpointsChangeNothing) {
  const std::string dir = temp_dir();
  Trainer plain(small_config(dir + "/plain", run_keys({"run.checkpoint_every=off"})), quiet());
  plain.run();
  TrainerOptions o = quiet();
  int commits = 0;
  o.commit_probe = [&](const std::string& point) { commits += point == "committed"; };
  Trainer often(small_config(dir + "/often", run_keys({"run.checkpoint_every=2 steps"})), o);
  often.run();
  EXPECT_EQ(commits, 3 + 3 * 5) << "3 epoch ends, and steps 2, 4, .., 10 inside each epoch of 12";
  expect_same_run_state(plain, often);
  std::filesystem::remove_all(dir);
}

// A run killed before its first checkpoint leaves a folder with logs but no checkpoint:
// --resume auto starts the run anew there (and drops the dead run's lines), as in a new folder.
TEST(LongRun, ResumeAutoStartsAfreshWithoutACheckpoint) {
  const std::string dir = temp_dir();
  TrainerOptions resume = quiet();
  resume.resume = "auto";
  {
    Trainer fresh(small_config(dir + "/new", {"run.stop_epoch=1"}), resume);
    EXPECT_TRUE(fresh.resumed_from().empty());
    fresh.run();
  }
  std::filesystem::create_directories(dir + "/dead");
  std::ofstream(dir + "/dead/config.toml") << "# from a dead run\n";
  std::ofstream(dir + "/dead/metrics.jsonl") << R"({"type": "iteration", "epoch": 1, "step": 1, "loss": 9})" << "\n";
  Trainer again(small_config(dir + "/dead", {"run.stop_epoch=1"}), resume);
  EXPECT_TRUE(again.resumed_from().empty());
  EXPECT_EQ(again.global_step(), 0);
  again.run();
  EXPECT_EQ(metrics_of(dir + "/dead"), metrics_of(dir + "/new"));
  std::filesystem::remove_all(dir);
}

// The retention keys: checkpoint-epochNNNN.h5 for the last K epochs and every N-th, updated in the
// same commits as checkpoint.h5.
TEST(LongRun, RetainedCopies) {
  const std::string dir = temp_dir();
  Trainer t(small_config(dir, {"run.epochs=5", "run.keep_last_epochs=2", "run.keep_every_epochs=2"}), quiet());
  t.run();
  std::vector<std::string> copies;
  for (const auto& f : std::filesystem::directory_iterator(dir))
    if (f.path().filename().string().rfind("checkpoint-epoch", 0) == 0) copies.push_back(f.path().filename().string());
  std::sort(copies.begin(), copies.end());
  EXPECT_EQ(copies, (std::vector<std::string>{"checkpoint-epoch0002.h5", "checkpoint-epoch0004.h5",
                                              "checkpoint-epoch0005.h5"}));
  EXPECT_EQ(app::read_checkpoint(dir + "/checkpoint-epoch0004.h5").progress.epoch, 4);
  std::filesystem::remove_all(dir);
}

// The first signal only asks for a stop; the second one ends the process with that signal.
TEST(LongRun, ASecondSignalEndsTheProcessAtOnce) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    app::StopSignals signals({SIGUSR1, SIGTERM}, /*announce=*/false);
    std::raise(SIGTERM);
    if (app::StopSignals::received() != SIGTERM) _exit(3);
    std::raise(SIGUSR1);
    _exit(4);  // not reached
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit code " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  EXPECT_EQ(WTERMSIG(status), SIGUSR1);
}
