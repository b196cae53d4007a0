// What a data-parallel run adds to dp-train's Trainer, in one place: the process group, the
// communicators, the train::DataParallelSync its train::TrainStep calls, sync BatchNorm, and the one predicate
// for work only one rank does (printing, TensorBoard, metrics, checkpoints): writes().
//
// A single process (no launcher, or world size 1) has no DistributedRun at all.
#pragma once
#include <memory>
#include <vector>

#include "data/loader.h"
#include "dist/communicator.h"
#include "dist/process_group.h"
#include "kernels/sync_batch_norm.h"
#include "layers/module.h"
#include "train/data_parallel.h"
#include "train/train_step.h"

namespace dp::app {

// The run.* keys of a data-parallel run (app/run_config.h).
struct DistributedOptions {
  bool sync_batchnorm = false;
  double timeout_s = 300.0;
  DType allreduce_dtype = DType::Float32;
};

class DistributedRun {
 public:
  // model already on `device` (this rank's GPU, see device_for_rank, or the CPU).
  DistributedRun(layers::Module& model, train::FlatParameters& flat, Device device, const DistributedOptions& options);

  // Rank 0 prints, writes logs and checkpoints; the others compute only.
  bool writes() const { return group_.rank == 0; }
  const dist::ProcessGroup& group() const { return group_; }
  train::StepSync* step_sync() { return sync_.get(); }
  // For values on the host (CPU tensors over MPI): the evaluation's sums, the logged totals.
  dist::Communicator& host_communicator() { return host_comm_ ? *host_comm_ : *device_comm_; }

  // run.device = "cuda" on rank r takes the GPU of its local rank.
  static Device device_for_rank(Device requested, const dist::ProcessGroup& group);
  // optim.batch_size is the global batch: refused when the ranks cannot share it evenly.
  static void check_batch_size(int64_t batch_size, const dist::ProcessGroup& group);

  // Before each step: this step's split of the global batch over the ranks.
  void begin_step(const data::Loader& loader, int64_t batch_index);
  // Per-rank BN statistics (run.sync_batchnorm = false) drift apart: rank 0's are broadcast to
  // every rank before evaluation and before a checkpoint.
  void broadcast_batchnorm_statistics();
  // This rank's step totals summed over the ranks: the global batches' loss and counts, the same
  // on every rank (so a NaN stops every rank at once). A collective: every rank calls it at the
  // same points (the trainer's log steps and epoch end).
  train::StepTotals sum_over_ranks(const train::StepTotals& local);
  int64_t sum_over_ranks(int64_t local);  // e.g. the epoch's skipped samples

 private:
  dist::ProcessGroup group_;
  layers::Module& model_;
  std::unique_ptr<dist::Communicator> device_comm_, host_comm_;  // host_comm_: CUDA runs only
  std::unique_ptr<train::DataParallelSync> sync_;
  std::shared_ptr<kernels::BatchNormSync> bn_sync_;  // shared by every BatchNorm2d (sync mode)
};

}  // namespace dp::app
