// dp-train's training loop: the reference's iteration order (zero grads → forward → scaled CE
// with penalties → backward → model step → class step → instance step → clamp), per-epoch
// evaluation, checkpoints with the full state for an exact resume, TensorBoard and JSON-lines
// logs with the reference's tags.
#pragma once
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"
#include "app/config.h"
#include "train/data_parameters.h"
#include "train/lr_schedule.h"
#include "data/loader.h"
#include "app/run_config.h"
#include "app/run_data.h"
#include "train/train_step.h"
#include "train/sample_loss_record.h"
#include "train/sigma_histogram.h"
#include "train/sgd.h"

namespace dp::io {
class EventWriter;
}

namespace dp::app {

struct Checkpoint;

struct TrainerOptions {
  std::string resume;       // checkpoint to continue from ("" = fresh run)
  bool overwrite = false;   // run.output holds a run: move it aside and start anew (else refuse)
  bool quiet = false;       // no progress lines (tests)
  bool write_logs = true;   // TensorBoard + metrics.jsonl
};

struct EpochSummary {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_top1 = 0, val_loss = 0, val_top1 = 0, val_top5 = 0, seconds = 0;
  int64_t samples = 0;       // training samples the epoch drew (trained on + skipped)
  data::SkipReport skipped;  // dropped by data.bad_samples = "skip"
};

struct RunSummary {
  std::vector<EpochSummary> epochs;
  double best_val_top1 = 0;
  int64_t best_epoch = 0;
  int64_t skipped = 0;  // training samples skipped over the run's epochs (data.bad_samples = "skip")
  std::string output;
};

class DistributedRun;

class Trainer {
 public:
  Trainer(const Config& config, TrainerOptions options = {});
  ~Trainer();

  // Trains from the current epoch to run.epochs (or run.stop_epoch), evaluating and writing a
  // checkpoint after every epoch. Throws dp::Error on a NaN/Inf loss; the last checkpoint
  // written stays the last good one.
  RunSummary run();

  void save_checkpoint(const std::string& path) const;
  void load_checkpoint(const std::string& path);

  layers::Module& model() { return *model_; }
  train::DataParameters& data_parameters() { return *data_params_; }
  train::SGD& optimizer() { return *sgd_; }
  const RunData& run_data() const { return data_; }
  int64_t epochs_done() const { return epoch_; }
  int64_t global_step() const { return global_step_; }
  MemoryFormat memory_format() const { return rc_.memory_format; }  // of the batches fed to the model
  const RunConfig& run_config() const { return rc_; }
  const train::TrainStep& train_step() const { return *step_; }
  // False on the ranks of a data-parallel job other than 0: they print and write nothing.
  bool writes() const;
  const std::string& checkpoint_path() const { return checkpoint_path_; }
  const train::SigmaRecord& sigma_record() const { return sigma_record_; }
  const train::SampleLossRecord& sample_losses() const { return *loss_record_; }
  const std::string& output() const { return output_; }
  const std::string& replaced_run() const { return replaced_; }  // where --overwrite moved an earlier run

 private:
  EpochSummary train_one_epoch();
  void log_sigma(const std::string& name, const Tensor& theta, int64_t step, const std::vector<uint8_t>* mask,
                 uint8_t select);
  void record_sigma_history(int64_t epoch0);
  void write_metrics_line(const std::string& json_line);

  Config config_;  // as given (checkpoints record its resolved TOML)
  RunConfig rc_;   // the same, typed: what the loops read
  TrainerOptions options_;
  Device device_;
  RunData data_;
  layers::ModulePtr model_;
  std::unique_ptr<train::SGD> sgd_;
  std::unique_ptr<train::LrSchedule> schedule_;
  std::unique_ptr<train::DataParameters> data_params_;
  std::unique_ptr<DistributedRun> dist_;  // data-parallel runs only (mpirun / srun)
  std::unique_ptr<train::TrainStep> step_;
  std::unique_ptr<io::EventWriter> events_;
  std::ofstream metrics_;
  std::string output_, checkpoint_path_, best_path_;
  std::string replaced_;  // where --overwrite moved an earlier run ("" if none)
  int64_t epoch_ = 0;        // epochs completed
  int64_t global_step_ = 0;  // iterations completed (1-based in logs, like the reference)
  double best_top1_ = -1.0;
  int64_t best_epoch_ = 0;   // epoch of best_top1_ (1-based; 0: none yet)
  double eval_seconds_ = 0;  // the last evaluation's duration (for the ETA)
  train::SigmaRecord sigma_record_;  // σ histograms per epoch (checkpoint /history, the σ figure)
  std::unique_ptr<train::SampleLossRecord> loss_record_;  // each sample's training loss over the run
};

// The resolved config stored in a checkpoint (for dp-eval and dp-inspect).
Config config_from_checkpoint(const Checkpoint& checkpoint);

}  // namespace dp::app
