// What the data parameters learnt, epoch by epoch: σ histograms of the instance parameters (all
// samples and three disjoint groups of the noise map) and of the class parameters, kept in the
// run's checkpoints under /history and drawn by dp-inspect and TensorBoard as the σ figure.
//   history/sigma_edges                                   bins + 1 σ values shared by every histogram
//   history/sigma_<group>_counts [epochs, bins], history/sigma_<group>_sums [epochs]   per group:
//     inst                   every training sample
//     inst_mislabelled       label != original_label (the label really is wrong)
//     inst_permuted_kept     touched by the noise protocol, yet it kept its true class
//     inst_untouched         not touched by the noise protocol
//     class                  the class parameters
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/label_noise.h"
#include "engine/tensor.h"
#include "train/inspect/sigma_figure.h"
#include "train/io/checkpoint_file.h"
#include "train/sigma_histogram.h"

namespace dp::train {

// The disjoint groups of a noise map, one byte per sample.
enum SampleGroup : uint8_t { kUntouched = 0, kPermutedKept = 1, kMislabelled = 2 };
std::vector<uint8_t> sample_groups(const data::NoiseMap& noise);

struct SigmaRecord {
  SigmaHistory inst, inst_mislabelled, inst_permuted_kept, inst_untouched, cls;
  bool noisy = false;  // the noise map changed some labels: the groups are recorded

  explicit SigmaRecord(std::vector<double> edges = sigma_history_edges());

  // Appends one epoch from the log-space parameters (undefined tensors are skipped).
  void record_epoch(const Tensor& theta_inst, const Tensor& theta_class, const std::vector<uint8_t>& groups);

  void write(io::TensorFile& f) const;
  // From a checkpoint; older ones hold only sigma_inst_counts / sigma_class_counts (no sums, no groups).
  void read(const io::TensorFile& f);

  // Figures: mislabelled vs correctly labelled samples (or all samples when the run had no noise),
  // permuted vs untouched samples, and the class parameters. Empty when there is nothing to draw.
  std::vector<inspect::SigmaPanel> label_panels() const;
  std::vector<inspect::SigmaPanel> permuted_panels() const;
  std::vector<inspect::SigmaPanel> class_panels() const;
};

}  // namespace dp::train
