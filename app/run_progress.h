// How far a run has come: its epoch, step and position in the epoch, its best score, its seed,
// and what the epoch in progress has summed so far. The run-progress part of a checkpoint
// (engine/state_io.h; the names are in docs/checkpoint.md).
//
// Randomness is counter-based (Philox keyed by seed, epoch and sample index), so the seed and
// the position are the whole RNG state: a run resumed at step k of epoch e draws the very batches
// an uninterrupted run draws there.
#pragma once
#include <cstdint>
#include <vector>

#include "data/loader.h"
#include "engine/state_io.h"
#include "train/train_step.h"

namespace dp::app {

// One rank's sums over the steps of the epoch in progress: what its end-of-epoch line reports.
struct EpochSoFar {
  train::StepTotals totals;  // loss·batch, top-1, top-5, samples
  int64_t skipped = 0;       // samples the skip policy dropped
};

struct RunProgress {
  int64_t epoch = 0;        // epochs completed
  int64_t global_step = 0;  // steps completed
  int64_t epoch_step = 0;   // steps of epoch `epoch` (0-based) completed: > 0 in a mid-epoch checkpoint
  int64_t seed = 0;
  double best_val_top1 = -1.0;  // -1: no evaluation yet
  int64_t best_epoch = 0;       // the epoch best_val_top1 was reached (0: unknown or none)
  // Mid-epoch only: each rank's sums so far (rank order; one entry per rank of the job that wrote
  // it), the epoch's training seconds so far, and the first skipped samples (rank 0's).
  std::vector<EpochSoFar> ranks;
  double epoch_seconds = 0.0;
  data::SkipReport skipped_first;

  bool mid_epoch() const { return epoch_step > 0; }
  // The sums a rank of a job of `world_size` resumes with: its own when the world size is the one
  // that wrote them; otherwise rank 0 takes the whole job's sums and the others none (the epoch's
  // totals stay right; how they split over ranks does not matter).
  EpochSoFar resumed_sums(int rank, int world_size) const;

  void save(StateWriter& out) const;
  void load(StateReader& in);
};

}  // namespace dp::app
