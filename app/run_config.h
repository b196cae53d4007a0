// The run configuration as dp-train uses it: typed values built once from the validated TOML
// (app/config.h), so that no string look-up happens inside the training step or the epoch
// loop. Config stays the source of truth for what was asked (and what a checkpoint records).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/loader.h"
#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/tensor.h"
#include "app/config.h"
#include "train/data_parameters.h"
#include "train/lr_schedule.h"
#include "train/sgd.h"

namespace dp::app {

struct ScheduleConfig {
  std::string kind = "cifar";  // cifar | imagenet | multistep | cosine | constant
  double lr = 0.1;
  std::vector<int> milestones;
  double gamma = 0.1;
  int64_t warmup_epochs = 0;
  int64_t epochs = 1;  // the cosine schedule's length
};

struct RunConfig {
  // [model]
  std::string arch, init_from;
  // [optim]
  int64_t batch_size = 128;
  train::SgdOptions sgd;
  ScheduleConfig schedule;
  // [data]
  data::BadSamplePolicy bad_samples = data::BadSamplePolicy::kFail;
  double max_skipped_fraction = 0.01;  // skip policy: an epoch skipping more stops the run
  // [data_parameters]
  train::DataParamConfig data_params;
  // [run]
  int64_t epochs = 1, stop_epoch = 0;
  uint64_t seed = 1;
  Device device = Device::cpu();
  std::string precision = "tf32";             // fp32 | tf32 | bf16
  bool precision_given = false;               // run.precision was set (not its default)
  DType autocast = DType::Float32;            // BFloat16 under precision = "bf16"
  MemoryFormat memory_format = MemoryFormat::Contiguous;  // resolved from run.memory_format
  bool cudnn_benchmark = true;
  bool cuda_graphs = false;                   // resolved from run.cuda_graphs
  int64_t workers = 2;
  bool sync_batchnorm = false;                // data-parallel runs (app/distributed.h)
  double dist_timeout_s = 300.0;
  DType allreduce_dtype = DType::Float32;    // run.allreduce_dtype
  std::string output;
  int64_t print_freq = 10;
  int64_t eval_batch_size = 100;
  // Long runs (docs/long-runs.md).
  std::vector<int> stop_signals;           // run.stop_signals as signal numbers
  int64_t checkpoint_every_steps = 0;      // run.checkpoint_every = "N steps" (0: not by steps)
  double checkpoint_every_minutes = 0.0;   // run.checkpoint_every = "N min" (0: not by time)
  int64_t keep_last_epochs = 0, keep_every_epochs = 0;

  // The run's last epoch: run.epochs, or run.stop_epoch when it ends the run earlier.
  int64_t last_epoch() const { return stop_epoch > 0 ? std::min(epochs, stop_epoch) : epochs; }
};

// Reads every key once; resolves the "auto" settings for the device (memory format: channels-
// last with bf16 on CUDA; CUDA graphs: on for CUDA). Throws for combinations the schema cannot
// express (bf16 on the CPU, cuda_graphs = "on" on the CPU).
RunConfig make_run_config(const Config& config);

std::unique_ptr<train::LrSchedule> make_schedule(const ScheduleConfig& schedule);

// How the tools evaluate a run's model on `device` (their --device, which may differ from the
// run's): the run's precision where the device has it (bf16 on CUDA only), run.memory_format
// resolved for that device as make_run_config resolves it, run.eval_batch_size, run.workers.
struct EvalSettings {
  DType autocast = DType::Float32;
  MemoryFormat memory_format = MemoryFormat::Contiguous;
  int64_t batch_size = 100, workers = 2;
};
EvalSettings make_eval_settings(const Config& config, Device device);

// "TERM,INT,USR1" (SIG prefixes and spaces allowed) as signal numbers; throws naming run.stop_signals.
std::vector<int> parse_stop_signals(const std::string& list);
std::string signal_name(int signal);  // "SIGTERM"

}  // namespace dp::app
