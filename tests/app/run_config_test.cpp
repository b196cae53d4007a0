// The typed run configuration (app/run_config.h): every key read once, "auto" settings
// resolved for the device, combinations the schema cannot express refused with the key.
#include <gtest/gtest.h>

#include <csignal>

#include "engine/error.h"
#include "app/run_config.h"

using namespace dp;
using app::Config;
using app::make_run_config;

namespace {
Config config(std::vector<std::string> sets) { return Config::from_string("", "test.toml", std::move(sets)); }
}  // namespace

TEST(RunConfig, ReadsTheKeysOnce) {
  const app::RunConfig rc = make_run_config(config(
      {"optim.batch_size=64", "optim.lr=0.05", "optim.nesterov=true", "optim.schedule=multistep",
       "optim.milestones=[3, 7]", "run.epochs=9", "run.stop_epoch=4", "data.bad_samples=\"skip\"",
       "data_parameters.learn_inst_parameters=true", "data_parameters.lr_inst_param=0.2", "model.arch=\"wrn-16-2\""}));
  EXPECT_EQ(rc.batch_size, 64);
  EXPECT_DOUBLE_EQ(rc.sgd.lr, 0.05);
  EXPECT_TRUE(rc.sgd.nesterov);
  EXPECT_EQ(rc.schedule.milestones, (std::vector<int>{3, 7}));
  EXPECT_EQ(rc.last_epoch(), 4);
  EXPECT_EQ(rc.bad_samples, data::BadSamplePolicy::kSkip);
  EXPECT_TRUE(rc.data_params.learn_inst_parameters);
  EXPECT_DOUBLE_EQ(rc.data_params.lr_inst_param, 0.2);
  EXPECT_EQ(rc.arch, "wrn-16-2");
  auto schedule = app::make_schedule(rc.schedule);
  EXPECT_DOUBLE_EQ(schedule->lr(2.5), 0.05);
  EXPECT_NEAR(schedule->lr(3.0), 0.005, 1e-12);
}

TEST(RunConfig, AutoSettingsOnTheCpu) {
  const app::RunConfig rc = make_run_config(config({}));
  EXPECT_TRUE(rc.device.is_cpu());
  EXPECT_FALSE(rc.cuda_graphs) << "run.cuda_graphs = auto means eager on the CPU";
  EXPECT_EQ(rc.memory_format, MemoryFormat::Contiguous);
  EXPECT_EQ(rc.autocast, DType::Float32);
  EXPECT_EQ(make_run_config(config({"run.memory_format=\"channels_last\""})).memory_format, MemoryFormat::ChannelsLast);
}

TEST(RunConfig, AutoSettingsOnCuda) {
  // Resolution only (no device is touched): bf16 on CUDA means channels-last and graphs.
  const app::RunConfig rc = make_run_config(config({"run.device=\"cuda\"", "run.precision=\"bf16\""}));
  EXPECT_TRUE(rc.cuda_graphs);
  EXPECT_EQ(rc.memory_format, MemoryFormat::ChannelsLast);
  EXPECT_EQ(rc.autocast, DType::BFloat16);
  EXPECT_FALSE(make_run_config(config({"run.device=\"cuda\"", "run.cuda_graphs=\"off\""})).cuda_graphs);
}

TEST(RunConfig, RefusesWhatTheCpuCannotDo) {
  try {
    make_run_config(config({"run.cuda_graphs=\"on\""}));
    FAIL() << "cuda_graphs = on accepted on the CPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("run.cuda_graphs"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_run_config(config({"run.precision=\"bf16\""})), Error);
}

TEST(RunConfig, AllreduceDtypeDefaultsToFloat32) {
  EXPECT_EQ(make_run_config(config({})).allreduce_dtype, DType::Float32);
  EXPECT_EQ(make_run_config(config({"run.allreduce_dtype=bfloat16"})).allreduce_dtype, DType::BFloat16);
  EXPECT_THROW(make_run_config(config({"run.allreduce_dtype=float16"})), Error);
}

// The tools evaluate a run's model on their own --device: the run's precision and memory format,
// resolved for that device (a bf16 CUDA run inspected on the CPU evaluates in float32, NCHW).
TEST(RunConfig, EvalSettingsResolveTheRunsPrecisionForTheToolsDevice) {
  const Config bf16_run = config({"run.device=\"cuda\"", "run.precision=\"bf16\"", "run.eval_batch_size=64", "run.workers=3"});
  const app::EvalSettings on_cuda = app::make_eval_settings(bf16_run, Device::cuda());
  EXPECT_EQ(on_cuda.autocast, DType::BFloat16);
  EXPECT_EQ(on_cuda.memory_format, MemoryFormat::ChannelsLast) << "run.memory_format = auto, as the run trained";
  EXPECT_EQ(on_cuda.batch_size, 64);
  EXPECT_EQ(on_cuda.workers, 3);
  const app::EvalSettings on_cpu = app::make_eval_settings(bf16_run, Device::cpu());
  EXPECT_EQ(on_cpu.autocast, DType::Float32);
  EXPECT_EQ(on_cpu.memory_format, MemoryFormat::Contiguous);
  EXPECT_EQ(app::make_eval_settings(config({"run.memory_format=\"channels_last\""}), Device::cpu()).memory_format,
            MemoryFormat::ChannelsLast);
}

TEST(RunConfig, KnowsWhetherThePrecisionWasGiven) {
  EXPECT_FALSE(make_run_config(config({})).precision_given);
  EXPECT_TRUE(make_run_config(config({"run.precision=\"tf32\""})).precision_given);
}

// Long runs (issue 20): run.checkpoint_every in steps or minutes, run.stop_signals by name; a
// mistake names the key.
TEST(RunConfig, CheckpointEveryAndStopSignals) {
  const app::RunConfig d = make_run_config(config({}));
  EXPECT_EQ(d.checkpoint_every_minutes, 30.0);
  EXPECT_EQ(d.checkpoint_every_steps, 0);
  EXPECT_EQ(d.stop_signals, (std::vector<int>{SIGTERM, SIGINT, SIGUSR1}));
  EXPECT_EQ(make_run_config(config({"run.checkpoint_every=\"2000 steps\""})).checkpoint_every_steps, 2000);
  EXPECT_EQ(make_run_config(config({"run.checkpoint_every=\"7.5min\""})).checkpoint_every_minutes, 7.5);
  const app::RunConfig off = make_run_config(config({"run.checkpoint_every=\"off\""}));
  EXPECT_EQ(off.checkpoint_every_steps + off.checkpoint_every_minutes, 0.0);
  EXPECT_EQ(make_run_config(config({"run.stop_signals=\" sigusr2 , TERM\""})).stop_signals,
            (std::vector<int>{SIGUSR2, SIGTERM}));
  EXPECT_TRUE(make_run_config(config({"run.stop_signals=\"\""})).stop_signals.empty());
  for (const char* bad : {"run.checkpoint_every=\"3 hours\"", "run.stop_signals=\"TERM,KILL\""}) {
    try {
      make_run_config(config({bad}));
      ADD_FAILURE() << bad << " accepted";
    } catch (const Error& e) {
      const std::string key = std::string(bad).substr(0, std::string(bad).find('='));
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}
