// The training loop end to end on the synthetic dataset: exact resume, NaN handling, and that
// instance-level data parameters learn to distrust corrupted labels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/error.h"
#include "kernels/ops.h"
#include "train/io/checkpoint_file.h"
#include "train/io/safetensors.h"
#include "train/run/trainer.h"

using namespace dp;
using train::Config;
using train::Trainer;
using train::TrainerOptions;

namespace {

std::string temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "dp-run-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

// A small, fast run: tiny CNN, 12×12 synthetic images, 40% permutation noise, joint data parameters.
Config small_config(const std::string& output, std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = {
      "data.synthetic_train_size=384", "data.synthetic_test_size=64", "data.image_size=12",
      "data.noise=permute", "data.rand_fraction=0.4", "model.arch=tiny-cnn", "optim.batch_size=32",
      "optim.schedule=multistep", "optim.milestones=[1]", "data_parameters.learn_inst_parameters=true",
      "data_parameters.learn_class_parameters=true", "data_parameters.lr_inst_param=0.2",
      "data_parameters.wd_class_param=1e-4", "run.epochs=2", "run.workers=2", "run.output=" + output};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return Config::from_string("", "test.toml", sets);
}

TrainerOptions quiet() {
  TrainerOptions o;
  o.quiet = true;
  return o;
}

void expect_same_tensor_bits(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  ASSERT_EQ(a.nbytes(), b.nbytes()) << what;
  Tensor ha = a.to(Device::cpu()), hb = b.to(Device::cpu());
  EXPECT_EQ(std::memcmp(ha.raw_data(), hb.raw_data(), ha.nbytes()), 0) << what << " differs";
}

}  // namespace

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

// A NaN loss (here from NaN initial weights) stops the run with a message naming the last good
// checkpoint, which stays loadable and unchanged.
TEST(Trainer, NanLossStopsAndKeepsTheLastGoodCheckpoint) {
  std::string dir = temp_dir();
  std::vector<std::pair<std::string, Tensor>> weights;
  {
    Trainer t(small_config(dir, {"run.stop_epoch=1"}), quiet());
    t.run();
    for (const auto& [name, tensor] : t.model().state_dict()) weights.emplace_back(name, tensor.clone());
  }
  for (auto& [name, tensor] : weights)
    if (name == "classifier.weight") ops::fill_(tensor, std::nan(""));
  io::write_safetensors(dir + "/nan.safetensors", weights);
  Trainer exploding(small_config(dir, {"model.init_from=" + dir + "/nan.safetensors"}), quiet());
  try {
    exploding.run();
    FAIL() << "a run with NaN weights did not stop";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("nan"), std::string::npos) << what;
    EXPECT_NE(what.find("checkpoint.h5"), std::string::npos) << what;
  }
  io::TensorFile f = io::read_tensor_file(dir + "/checkpoint.h5");
  EXPECT_EQ(f.ints.at("epoch"), 1);
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
