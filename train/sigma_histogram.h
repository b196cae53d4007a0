// The one σ histogram of the project: TensorBoard's σ histograms (sigma_stats), the per-epoch
// history stored in checkpoints (SigmaRecord, under /history: app/checkpoint_schema.h) and
// dp-inspect's figure all bin with `histogram` below.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/label_noise.h"
#include "engine/state_io.h"
#include "engine/tensor.h"

namespace dp::train {

std::vector<double> linear_edges(double lo, double hi, int bins);
std::vector<double> log_edges(double lo, double hi, int bins);

// Counts of σ per bin [edges[b], edges[b + 1]) (the last bin closed; values outside the edges
// count in the end bins), over the entries where mask is null or mask[i] == select.
std::vector<int64_t> histogram(const std::vector<float>& sigma, const std::vector<double>& edges,
                               const std::vector<uint8_t>* mask = nullptr, uint8_t select = 1);

// The edges of the per-epoch history: fine log-spaced bins over the clamp range [1/20, 20], fine
// enough (0.6 % wide) that a figure can zoom in on the few percent of that range a run's σ occupy.
std::vector<double> sigma_history_edges();

// σ histograms of one group of samples, one row per epoch, over edges shared by every epoch.
struct SigmaHistory {
  std::vector<double> edges;                 // bins + 1 σ values
  std::vector<std::vector<int64_t>> counts;  // [epoch][bin]
  std::vector<double> sums;                  // [epoch] exact sum of the group's σ (empty: unknown)

  int64_t epochs() const { return static_cast<int64_t>(counts.size()); }
  int64_t total(int64_t epoch) const;  // samples in the group at `epoch` (0-based)
  double mean(int64_t epoch) const;    // exact when sums are known, else from bin centres
  // Appends an epoch: the histogram and sum of σ over the entries selected by mask/select.
  void add_epoch(const std::vector<float>& sigma, const std::vector<uint8_t>* mask = nullptr, uint8_t select = 1);
};

// Two disjoint groups as one (same edges and epochs): e.g. clean = untouched + permuted-but-kept.
SigmaHistory merged(const SigmaHistory& a, const SigmaHistory& b);

// The disjoint groups of a noise map, one byte per sample.
enum SampleGroup : uint8_t {
  kUntouched = 0,     // the noise protocol left the sample alone
  kPermutedKept = 1,  // touched by the noise protocol, yet its label is still its true class
  kMislabelled = 2,   // label != original_label: the label really is wrong
};
std::vector<uint8_t> sample_groups(const data::NoiseMap& noise);

// What the data parameters learnt, epoch by epoch: σ histograms of the instance parameters (all
// samples, and each group of the noise map when it changed any label) and of the class parameters.
struct SigmaRecord {
  SigmaHistory inst, inst_mislabelled, inst_permuted_kept, inst_untouched, cls;

  explicit SigmaRecord(std::vector<double> edges = sigma_history_edges());
  // The groups were recorded for every epoch of `inst`.
  bool has_groups() const { return inst.epochs() > 0 && inst_mislabelled.epochs() == inst.epochs(); }
  bool empty() const { return inst.epochs() == 0 && cls.epochs() == 0; }
  // Appends one epoch from the log-space parameters (undefined tensors are skipped).
  void record_epoch(const Tensor& theta_inst, const Tensor& theta_class, const std::vector<uint8_t>& groups);
  // Each history with its name in the checkpoint (history/sigma_<name>_counts), in a fixed order.
  std::vector<std::pair<std::string, SigmaHistory*>> named();
  std::vector<std::pair<std::string, const SigmaHistory*>> named() const;

  // The history's part of a checkpoint: history/sigma_edges and, per group with rows,
  // history/sigma_<name>_counts [epochs, bins] (int64) and history/sigma_<name>_sums [epochs]
  // (float64, when known). The groups of the noise map are written only as a whole over every
  // epoch, and read back only so (all three with as many epochs as inst, or none).
  void save(StateWriter& out) const;
  void load(StateReader& in);  // replaces this record (stored histories keep their own bins)
};

}  // namespace dp::train
