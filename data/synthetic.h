// A procedural image-classification dataset: no files, deterministic from the seed, learnable.
// Each class has its own oriented sinusoidal grating and colour; each sample draws a random
// phase, contrast and per-pixel noise, so a small conv net separates the classes in a few epochs
// while a linear model on raw pixels does noticeably worse.
#pragma once
#include <cstdint>

#include "data/dataset.h"
#include "data/dataset_kind.h"

namespace dp::data {

struct SyntheticOptions {
  int64_t size = 1024;
  int64_t num_classes = 10;
  int64_t height = 32;
  int64_t width = 32;
  uint64_t seed = 0;
  // Draws the samples of another split (e.g. 1 = test) from the same classes: class patterns
  // depend on the seed only, sample noise and phase on (seed, split, index).
  uint64_t split = 0;
  double noise = 0.25;  // std of per-pixel noise, relative to the 0..255 range
};

class SyntheticDataset final : public Dataset {
 public:
  explicit SyntheticDataset(SyntheticOptions options);
  int64_t size() const override { return options_.size; }
  int64_t num_classes() const override { return options_.num_classes; }
  // Balanced and fixed: label = index mod num_classes.
  int64_t label(int64_t index) const override;
  RawSample load(int64_t index) const override;
  std::string source(int64_t index) const override;
  SampleIdentity identity(int64_t index) const override;  // the index and every generator parameter

 private:
  SyntheticOptions options_;
};

// data.dataset = "synthetic": no files; DatasetRequest's seed, synthetic_size, num_classes,
// synthetic_noise and image_size; the same classes in both splits, other samples.
DatasetKind synthetic_kind();

}  // namespace dp::data
