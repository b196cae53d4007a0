// The training loop end to end on the synthetic dataset: exact resume, NaN handling, and that
// instance-level data parameters learn to distrust corrupted labels.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/error.h"
#include "kernels/ops.h"
#include "app/inspect/png_file.h"
#include "io/checkpoint_file.h"
#include "io/safetensors.h"
#include "app/checkpoint_schema.h"
#include "app/trainer.h"
#include "tests/app/trainer_util.h"

using namespace dp;
using namespace dp::fixture;
using app::Config;
using app::Trainer;
using app::TrainerOptions;


TEST(Trainer, ResumeIsBitIdentical) {
  std::string dir = temp_dir();
  Trainer straight(small_config(dir + "/straight"), quiet());
  straight.run();

  {
    Trainer first(small_config(dir + "/split", {"run.stop_epoch=1"}), quiet());
    first.run();
    EXPECT_EQ(first.epochs_done(), 1);
  }
  TrainerOptions resume = quiet();
  resume.resume = dir + "/split/checkpoint.h5";
  Trainer second(small_config(dir + "/split"), resume);
  EXPECT_EQ(second.epochs_done(), 1);
  second.run();
  EXPECT_EQ(second.global_step(), straight.global_step());

  for (const auto& [name, t] : straight.model().state_dict())
    expect_same_tensor_bits(t, second.model().state_dict().at(name), "model " + name);
  const auto& ma = straight.optimizer().momentum_buffers();
  const auto& mb = second.optimizer().momentum_buffers();
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t i = 0; i < ma.size(); ++i) expect_same_tensor_bits(ma[i], mb[i], "momentum " + std::to_string(i));
  expect_same_tensor_bits(straight.data_parameters().theta_inst(), second.data_parameters().theta_inst(), "θ_inst");
  expect_same_tensor_bits(straight.data_parameters().theta_class(), second.data_parameters().theta_class(), "θ_class");
  expect_same_tensor_bits(straight.data_parameters().inst_optimizer()->momentum_buffer(),
                          second.data_parameters().inst_optimizer()->momentum_buffer(), "θ_inst momentum");
  expect_same_tensor_bits(straight.data_parameters().class_optimizer()->momentum_buffer(),
                          second.data_parameters().class_optimizer()->momentum_buffer(), "θ_class momentum");
  expect_same_tensor_bits(straight.sample_losses().sum(), second.sample_losses().sum(), "per-sample loss sums");
  expect_same_tensor_bits(straight.sample_losses().count(), second.sample_losses().count(), "per-sample loss counts");
  std::filesystem::remove_all(dir);
}

// Every training sample's loss is recorded once per epoch and the checkpoint keeps the record
// (/history/sample_loss_sum and _count), so that dp-inspect can rank by the mean training loss.
TEST(Trainer, RecordsEachSamplesTrainingLossOverTheRun) {
  std::string dir = temp_dir();
  Trainer t(small_config(dir), quiet());
  t.run();
  const std::vector<float> count = t.sample_losses().count().to_float_vector();
  ASSERT_EQ(count.size(), 384u);
  for (float c : count) ASSERT_EQ(c, 2.f) << "two epochs, each sample once per epoch";
  for (float m : t.sample_losses().mean()) ASSERT_TRUE(std::isfinite(m) && m > 0.f);
  const app::Checkpoint c = app::read_checkpoint(dir + "/checkpoint.h5");
  expect_same_tensor_bits(c.sample_loss.sum, t.sample_losses().sum(), "stored sums");
  expect_same_tensor_bits(c.sample_loss.count, t.sample_losses().count(), "stored counts");
  std::filesystem::remove_all(dir);
}

// run.memory_format = "channels_last" feeds NHWC batches through the whole run (training and
// evaluation); on the CPU that must reproduce the NCHW run bit for bit.
TEST(Trainer, ChannelsLastRunIsBitIdenticalOnTheCpu) {
  std::string dir = temp_dir();
  Trainer nchw(small_config(dir + "/nchw", {"run.stop_epoch=1", "run.memory_format=contiguous"}), quiet());
  nchw.run();
  Trainer nhwc(small_config(dir + "/nhwc", {"run.stop_epoch=1", "run.memory_format=channels_last"}), quiet());
  nhwc.run();
  EXPECT_EQ(nhwc.memory_format(), MemoryFormat::ChannelsLast);
  EXPECT_EQ(Trainer(small_config(dir + "/auto"), quiet()).memory_format(), MemoryFormat::Contiguous)
      << "auto is contiguous on the CPU";
  for (const auto& [name, t] : nchw.model().state_dict())
    expect_same_tensor_bits(t, nhwc.model().state_dict().at(name), "model " + name);
  expect_same_tensor_bits(nchw.data_parameters().theta_inst(), nhwc.data_parameters().theta_inst(), "θ_inst");
  std::filesystem::remove_all(dir);
}

// A NaN loss (here from NaN weights, loaded into a resumed run) stops the run with a message
// naming the last good checkpoint, which stays loadable and unchanged.
TEST(Trainer, NanLossStopsAndKeepsTheLastGoodCheckpoint) {
  std::string dir = temp_dir();
  {
    Trainer t(small_config(dir, {"run.stop_epoch=1"}), quiet());
    t.run();
  }
  io::TensorFile f = io::read_tensor_file(dir + "/checkpoint.h5");
  for (auto& [name, tensor] : f.tensors)
    if (name == "model/classifier.weight") kernels::fill_(tensor, std::nan(""));
  io::write_tensor_file_atomic(dir + "/nan.h5", f);
  TrainerOptions resume = quiet();
  resume.resume = dir + "/nan.h5";
  Trainer exploding(small_config(dir), resume);
  try {
    exploding.run();
    FAIL() << "a run with NaN weights did not stop";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("nan"), std::string::npos) << what;
    EXPECT_NE(what.find("checkpoint.h5"), std::string::npos) << what;
  }
  EXPECT_EQ(io::read_tensor_file(dir + "/checkpoint.h5").ints.at("epoch"), 1);
  std::filesystem::remove_all(dir);
}

TEST(Trainer, ResumeRefusesAnotherModel) {
  std::string dir = temp_dir();
  {
    Trainer t(small_config(dir, {"run.stop_epoch=1"}), quiet());
    t.run();
  }
  TrainerOptions resume = quiet();
  resume.resume = dir + "/checkpoint.h5";
  EXPECT_THROW(Trainer(small_config(dir, {"model.arch=wrn-10-1"}), resume), Error);
  std::filesystem::remove_all(dir);
}

// Issue 13: --resume took a transposed momentum buffer without a word; the schema refuses it,
// naming the file and the dataset.
TEST(Trainer, ResumeRefusesATransposedMomentumBuffer) {
  std::string dir = temp_dir();
  {
    Trainer t(small_config(dir, {"run.stop_epoch=1"}), quiet());
    t.run();
  }
  std::string path = dir + "/checkpoint.h5";
  io::TensorFile f = io::read_tensor_file(path);
  std::string tampered;
  for (auto& [name, t] : f.tensors)
    if (tampered.empty() && name.rfind("optimizer/momentum/", 0) == 0 && t.dim() == 2 && t.size(0) != t.size(1)) {
      t = Tensor::zeros({t.size(1), t.size(0)});
      tampered = name;
    }
  ASSERT_FALSE(tampered.empty());
  io::write_tensor_file_atomic(path, f);
  TrainerOptions resume = quiet();
  resume.resume = path;
  try {
    Trainer second(small_config(dir), resume);
    FAIL() << "a transposed momentum buffer was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("/" + tampered), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

// Issue 13: kill -9 during a checkpoint write left "*.h5.tmp.<pid>" behind forever. A new run
// in the folder removes those of dead processes and keeps those of live ones.
TEST(Trainer, StaleTemporariesOfDeadWritersAreRemovedAtStart) {
  std::string dir = temp_dir();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);  // its pid now names no process
  const std::string stale = dir + "/checkpoint.h5.tmp." + std::to_string(child);
  const std::string live = dir + "/best.h5.tmp." + std::to_string(getpid());
  const std::string other = dir + "/notes.tmp.1";
  for (const auto& p : {stale, live, other}) std::ofstream(p) << "partial";
  Trainer t(small_config(dir, {"run.stop_epoch=1"}), quiet());
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(live));
  EXPECT_TRUE(std::filesystem::exists(other));
  std::filesystem::remove_all(dir);
}

// Issue 13: run.output under a regular file gave a raw "filesystem error" naming no key.
TEST(Trainer, AnUnusableOutputFolderNamesTheKey) {
  std::string dir = temp_dir();
  std::ofstream(dir + "/file") << "x";
  for (const std::string& output : {dir + "/file/run", dir + "/file", std::string("/proc/dp-run")}) {
    try {
      Trainer t(small_config(output), quiet());
      ADD_FAILURE() << output << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("run.output"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(output), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove_all(dir);
}

// The quickstart's claim, on a shorter run: corrupted samples end with a higher mean σ.
TEST(Trainer, CorruptedSamplesGetHigherSigma) {
  std::string dir = temp_dir();
  Config c = Config::from_string("", "test.toml",
                                 {"data.synthetic_train_size=1024", "data.synthetic_test_size=64",
                                  "data.image_size=12", "data.noise=permute", "data.rand_fraction=0.4",
                                  "model.arch=tiny-cnn", "optim.batch_size=64", "optim.schedule=constant",
                                  "data_parameters.learn_inst_parameters=true",
                                  "data_parameters.lr_inst_param=0.2", "run.epochs=16", "run.output=" + dir});
  Trainer t(c, quiet());
  t.run();
  train::SigmaStatsSplit s =
      train::sigma_stats_split(t.data_parameters().theta_inst(), t.run_data().noise.is_corrupted);
  EXPECT_GT(s.corrupted.mean, 1.0);
  EXPECT_LT(s.clean.mean, 1.0);
  EXPECT_GT(s.corrupted.mean - s.clean.mean, 0.1) << "corrupted " << s.corrupted.mean << " clean " << s.clean.mean;
  std::filesystem::remove_all(dir);
}

// checkpoint.h5 must record the best score including its own epoch: a resumed run compares its
// epochs with that score, and a stale one let it replace best.h5 with a worse model (issue 15).
TEST(Trainer, CheckpointRecordsTheBestScoreOfItsOwnEpoch) {
  std::string dir = temp_dir();
  double first_top1 = 0;
  {
    Trainer t(small_config(dir, {"run.stop_epoch=1"}), quiet());
    first_top1 = t.run().epochs.at(0).val_top1;
  }
  io::TensorFile ckpt = io::read_tensor_file(dir + "/checkpoint.h5");
  EXPECT_EQ(ckpt.floats.at("best_val_top1"), first_top1) << "checkpoint.h5's best score is one epoch stale";
  TrainerOptions resume = quiet();
  resume.resume = dir + "/checkpoint.h5";
  Trainer second(small_config(dir, {"run.stop_epoch=2"}), resume);
  app::RunSummary s = second.run();
  const double second_top1 = s.epochs.at(0).val_top1;
  const int64_t best_epoch = second_top1 > first_top1 ? 2 : 1;
  EXPECT_EQ(s.best_epoch, best_epoch);
  EXPECT_EQ(io::read_tensor_file(dir + "/best.h5").ints.at("epoch"), best_epoch)
      << "epoch 1: " << first_top1 << "%, epoch 2: " << second_top1 << "%";
  std::filesystem::remove_all(dir);
}

// A folder that holds a run is neither reused silently nor appended to: a fresh run there is
// refused, naming --resume and --overwrite, and leaves every file as it was (issue 15).
TEST(Trainer, RefusesAFolderThatHoldsARun) {
  std::string dir = temp_dir();
  {
    Trainer t(small_config(dir, {"run.stop_epoch=1"}), quiet());
    t.run();
  }
  const auto best_time = std::filesystem::last_write_time(dir + "/best.h5");
  const auto metrics_size = std::filesystem::file_size(dir + "/metrics.jsonl");
  try {
    Trainer again(small_config(dir, {"run.stop_epoch=1"}), quiet());
    again.run();
    FAIL() << "a fresh run reused a folder that holds a run";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("already holds a run"), std::string::npos) << what;
    EXPECT_NE(what.find("--resume"), std::string::npos) << what;
    EXPECT_NE(what.find("--overwrite"), std::string::npos) << what;
  }
  EXPECT_EQ(std::filesystem::last_write_time(dir + "/best.h5"), best_time);
  EXPECT_EQ(std::filesystem::file_size(dir + "/metrics.jsonl"), metrics_size);
  std::filesystem::remove_all(dir);
}

// --overwrite moves the earlier run aside (nothing is deleted) before the new run writes.
TEST(Trainer, OverwriteMovesTheEarlierRunAside) {
  std::string dir = temp_dir();
  {
    Trainer t(small_config(dir + "/run", {"run.stop_epoch=1"}), quiet());
    t.run();
  }
  TrainerOptions overwrite = quiet();
  overwrite.overwrite = true;
  Trainer again(small_config(dir + "/run", {"run.stop_epoch=1"}), overwrite);
  const std::string old = again.replaced_run();
  ASSERT_FALSE(old.empty());
  EXPECT_EQ(old.rfind(dir + "/run.replaced-", 0), 0u) << old;
  EXPECT_EQ(io::read_tensor_file(old + "/checkpoint.h5").ints.at("epoch"), 1);
  EXPECT_FALSE(std::filesystem::exists(dir + "/run/checkpoint.h5"));
  TrainerOptions both = overwrite;
  both.resume = old + "/checkpoint.h5";
  EXPECT_THROW(Trainer(small_config(dir + "/other"), both), Error) << "--resume with --overwrite";
  std::filesystem::remove_all(dir);
}

// The run folder describes itself: config.toml holds the resolved configuration and reads back
// as the same configuration.
TEST(Trainer, WritesTheResolvedConfigBesideTheCheckpoints) {
  std::string dir = temp_dir();
  Config c = small_config(dir, {"run.stop_epoch=1"});
  Trainer t(c, quiet());
  ASSERT_TRUE(std::filesystem::exists(dir + "/config.toml"));
  EXPECT_EQ(Config::from_file(dir + "/config.toml").resolved_toml(), c.resolved_toml());
  std::filesystem::remove_all(dir);
}

namespace {

// An image folder (train/ and val/, two classes of 16×16 PNGs) whose training split holds
// `bad` files that are not images.
std::string image_folder_with_bad_files(const std::string& root, int bad) {
  for (const char* split : {"train", "val"})
    for (int c = 0; c < 2; ++c) {
      const std::string folder = fmt::format("{}/{}/class{}", root, split, c);
      std::filesystem::create_directories(folder);
      for (int i = 0; i < 24; ++i) {
        cv::Mat m(16, 16, CV_8UC3, cv::Scalar(40 + 160 * c, 90, 200 - 160 * c));
        app::inspect::write_png_bgr(fmt::format("{}/{:03}.png", folder, i), m.data, m.cols, m.rows, m.step);
      }
    }
  for (int i = 0; i < bad; ++i) std::ofstream(fmt::format("{}/train/class0/broken{}.jpg", root, i)) << "not a JPEG";
  return root;
}

Config image_folder_config(const std::string& data, const std::string& output, std::vector<std::string> extra) {
  std::vector<std::string> sets = {"data.dataset=imagefolder", "data.path=" + data, "data.image_size=8",
                                   "data.bad_samples=skip", "model.arch=tiny-cnn", "optim.batch_size=16",
                                   "optim.schedule=constant", "run.epochs=1", "run.workers=2",
                                   "run.output=" + output};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return Config::from_string("", "test.toml", sets);
}

}  // namespace

// Skipped samples are reported (metrics.jsonl names the files and reasons, the summary counts
// them), and a run that skips more than data.max_skipped_fraction stops, naming the files (issue 15).
TEST(Trainer, ReportsSkippedSamplesAndStopsAboveTheLimit) {
#ifdef DP_NO_IMAGE_CODECS
  GTEST_SKIP() << "this build decodes JPEG only (GPU kit): the PNG image folder cannot be read";
#endif
  std::string dir = temp_dir();
  const std::string data = image_folder_with_bad_files(dir + "/data", 2);
  {
    Trainer t(image_folder_config(data, dir + "/ok", {"data.max_skipped_fraction=0.1"}), quiet());
    app::RunSummary s = t.run();
    EXPECT_EQ(s.skipped, 2);
    ASSERT_EQ(s.epochs.size(), 1u);
    EXPECT_EQ(s.epochs[0].skipped.count, 2);
    EXPECT_EQ(s.epochs[0].samples, 50);
  }
  bool found = false;
  std::ifstream metrics(dir + "/ok/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] != "epoch") continue;
    ASSERT_TRUE(j.contains("skipped")) << line;
    EXPECT_EQ(j["skipped"]["count"], 2);
    ASSERT_EQ(j["skipped"]["first"].size(), 2u);
    EXPECT_NE(j["skipped"]["first"][0]["source"].get<std::string>().find("broken"), std::string::npos) << line;
    EXPECT_FALSE(j["skipped"]["first"][0]["reason"].get<std::string>().empty());
    found = true;
  }
  EXPECT_TRUE(found) << "no epoch line in metrics.jsonl";

  Trainer strict(image_folder_config(data, dir + "/strict", {"data.max_skipped_fraction=0.01"}), quiet());
  try {
    strict.run();
    FAIL() << "2 of 50 samples skipped, above data.max_skipped_fraction = 0.01, and the run went on";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("data.max_skipped_fraction"), std::string::npos) << what;
    EXPECT_NE(what.find("broken"), std::string::npos) << what;
  }
  std::filesystem::remove_all(dir);
}
