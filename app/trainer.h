// dp-train's training loop: the reference's iteration order (zero grads → forward → scaled CE
// with penalties → backward → model step → class step → instance step → clamp), per-epoch
// evaluation, TensorBoard and JSON-lines logs with the reference's tags, and the long-run
// machinery (docs/long-runs.md): checkpoints at epoch ends and mid-epoch (run.checkpoint_every),
// written in the background as one commit per save; a graceful stop on a signal at a step
// boundary every rank agrees on; resume from any step, bit-identical on the CPU.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/line_log.h"
#include "layers/module.h"
#include "app/config.h"
#include "train/data_parameters.h"
#include "train/lr_schedule.h"
#include "data/loader.h"
#include "app/checkpoint_commit.h"
#include "app/run_config.h"
#include "app/run_data.h"
#include "app/run_progress.h"
#include "train/train_step.h"
#include "train/sample_loss_record.h"
#include "train/sigma_histogram.h"
#include "train/sgd.h"

namespace dp::io {
class EventWriter;
}

namespace dp::app {

struct Checkpoint;
class BackgroundSaver;
class StopSignals;

struct TrainerOptions {
  // Checkpoint to continue from ("" = fresh run); "auto": run.output's checkpoint.h5 when there
  // is one, else a fresh run (what a requeued job runs).
  std::string resume;
  bool overwrite = false;   // run.output holds a run: move it aside and start anew (else refuse)
  bool quiet = false;       // no progress lines (tests)
  bool write_logs = true;   // TensorBoard + metrics.jsonl
  // Catch run.stop_signals for a graceful stop while run() runs (dp-train; a library user or a
  // test may keep the process's own handlers).
  bool handle_stop_signals = false;
  // Test seams: called after every training step, and at each point of every checkpoint save.
  std::function<void(const class Trainer&)> after_step;
  CommitProbe commit_probe;
  bool allow_data_change = false;  // resume on data other than the checkpoint's (app/data_fingerprint.h)
};

struct EpochSummary {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_top1 = 0, val_loss = 0, val_top1 = 0, val_top5 = 0, seconds = 0;
  int64_t samples = 0;       // training samples the epoch drew (trained on + skipped)
  data::SkipReport skipped;  // dropped by data.bad_samples = "skip"
};

struct RunSummary {
  std::vector<EpochSummary> epochs;  // the epochs completed by this run() call
  // A stop signal ended the run early (a checkpoint of the stopping step is written): the signal
  // (-1: received by another rank of the job). dp-train then exits with kExitStopped.
  bool stopped = false;
  int stop_signal = 0;
  double best_val_top1 = 0;
  int64_t best_epoch = 0;
  int64_t skipped = 0;  // training samples skipped over the run's epochs (data.bad_samples = "skip")
  std::string output;
};

class DistributedRun;
class RunLock;

class Trainer {
 public:
  Trainer(const Config& config, TrainerOptions options = {});
  ~Trainer();

  // Trains from the current position to run.epochs (or run.stop_epoch), evaluating and saving a
  // checkpoint after every epoch (and mid-epoch per run.checkpoint_every); returns early, with a
  // checkpoint of the stopping step, after a stop signal. Throws dp::Error on a NaN/Inf loss; the
  // last checkpoint saved stays the last good one. Every save is on disk when it returns.
  RunSummary run();

  // The run's state as a checkpoint, every tensor copied to the host (training may go on while
  // it is written), and its restore.
  Checkpoint snapshot() const;
  void restore(const Checkpoint& checkpoint);
  // Synchronous writes outside the run folder's commits (tools, tests), and a checked load.
  void save_checkpoint(const std::string& path) const;
  void load_checkpoint(const std::string& path);

  layers::Module& model() { return *model_; }
  train::DataParameters& data_parameters() { return *data_params_; }
  train::SGD& optimizer() { return *sgd_; }
  const RunData& run_data() const { return data_; }
  int64_t epochs_done() const { return progress_.epoch; }
  int64_t global_step() const { return progress_.global_step; }
  const RunProgress& progress() const { return progress_; }
  const std::string& resumed_from() const { return resumed_from_; }  // "" for a fresh run
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
  struct EpochOutcome {
    EpochSummary summary;
    bool stopped = false;
    int stop_signal = 0;
  };
  struct Boundary {
    int stop_signal = 0;  // != 0: stop here (-1: another rank's signal)
    bool save = false;    // a mid-epoch checkpoint is due (run.checkpoint_every)
  };
  RunSummary run_epochs();
  EpochOutcome train_one_epoch();
  Boundary at_step_boundary(int64_t epoch_step, int64_t iterations);
  void save_mid_epoch(const EpochSoFar& mine);
  void save_epoch_end(bool improved);
  void submit_save(CommitPlan plan);
  void trim_logs_to_progress();
  std::vector<std::string> parameter_names() const;
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
  std::unique_ptr<RunLock> run_lock_;     // held by the writing process for the whole run
  std::unique_ptr<DistributedRun> dist_;  // data-parallel runs only (mpirun / srun)
  std::unique_ptr<train::TrainStep> step_;
  std::unique_ptr<io::EventWriter> events_;
  io::LineLog metrics_;  // metrics.jsonl, every line checked
  std::string output_, checkpoint_path_, best_path_;
  std::string replaced_;      // where --overwrite moved an earlier run ("" if none)
  std::string resumed_from_;  // the checkpoint this run continues ("" if none)
  std::string data_fingerprint_;  // of this run's data, JSON (the writing rank; app/data_fingerprint.h)
  // Epoch, global step (1-based in logs, like the reference), position in the epoch, best score
  // (best_epoch 1-based; 0: none yet), and the epoch in progress's sums.
  RunProgress progress_;
  double eval_seconds_ = 0;  // the last evaluation's duration (for the ETA)
  std::unique_ptr<BackgroundSaver> saver_;
  std::unique_ptr<StopSignals> stop_signals_;
  int64_t last_saved_step_ = -1;  // global step of the newest checkpoint saved or resumed from
  std::chrono::steady_clock::time_point last_save_time_;
  train::SigmaRecord sigma_record_;  // σ histograms per epoch (checkpoint /history, the σ figure)
  std::unique_ptr<train::SampleLossRecord> loss_record_;  // each sample's training loss over the run
};

// The resolved config stored in a checkpoint (for dp-eval and dp-inspect).
Config config_from_checkpoint(const Checkpoint& checkpoint);

}  // namespace dp::app
