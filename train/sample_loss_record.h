// Each training sample's training loss averaged over the run: the small-loss criterion's score
// (a sample whose label is wrong keeps a high loss for longer), kept as cheaply as θ_inst.
//
// The loss recorded is the row loss the fused data-parameter kernel already computes for the
// step: −log softmax(z/σ*)[y] (kernels/data_param_ce.h, row_ce), i.e. the loss the sample was
// trained on; in a run without data parameters σ* = 1 and it is the plain cross-entropy. Two
// float32 vectors of the training-set size live on the step's device: the sum of a sample's
// losses and how many steps saw it; every step adds its batch's rows (two O(batch) scatters on
// the device stream, no host wait, capturable in a CUDA graph). The mean is read at the end.
//
// Determinism: a batch holds each dataset index at most once (the loader draws a permutation),
// so every entry receives at most one addition per step and the sums do not depend on the
// order of the device's atomics; a CPU and a CUDA run add the same float32 values in the same
// order per entry.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/state_io.h"
#include "engine/tensor.h"

namespace dp::train {

// The record's part of a checkpoint (docs/checkpoint.md): both datasets float32 [training-set
// size], or neither (checkpoints written before the record).
struct SampleLossState {
  static constexpr const char* kSum = "history/sample_loss_sum";
  static constexpr const char* kCount = "history/sample_loss_count";
  Tensor sum, count;
  bool defined() const { return sum.defined(); }
  void save(StateWriter& out) const;  // nothing when undefined
  // `length` is the training-set size (`because` says where it comes from).
  static SampleLossState read(StateReader& in, int64_t length, const std::string& because);
};

class SampleLossRecord {
 public:
  SampleLossRecord(int64_t num_samples, Device device);

  // sum[rows[b]] += row_loss[b], count[rows[b]] += 1. rows int64 [b], row_loss [b] (float32, or
  // float64 from a float64 test net: rounded to float32), both on the record's device.
  void add(const Tensor& rows, const Tensor& row_loss);

  const Tensor& sum() const { return sum_; }      // float32 [N], on the device
  const Tensor& count() const { return count_; }  // float32 [N] (exact below 2^24 steps per sample)
  int64_t size() const { return sum_.numel(); }

  // Replaces the state (from a checkpoint), keeping the device buffers a captured step writes.
  void load(const Tensor& sum, const Tensor& count);

  // On the host: sum / count, NaN for a sample no step has seen.
  std::vector<float> mean() const;

 private:
  Tensor sum_, count_;
  Tensor ones_;  // ≥ the largest batch seen; a batch's count increments are its first rows
  std::vector<Tensor> outgrown_;  // earlier, smaller ones_ that captured steps may still read
};

}  // namespace dp::train
