// Label noise for the training split, recorded per sample so that a run can report which samples
// were corrupted and how the learnt curriculum relates to them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace dp::data {

struct NoiseMap {
  std::string protocol;                 // "none", "image_permutation", "symmetric", "file:<column>"
  std::vector<int64_t> label;           // label the model is trained on
  std::vector<int64_t> original_label;  // true class of the image the sample shows
  std::vector<uint8_t> is_corrupted;    // 1 where the noise process touched the sample
  std::vector<int64_t> image_source;    // dataset index whose image sample i shows (identity
                                        // except for the image-permutation protocol)

  int64_t size() const { return static_cast<int64_t>(label.size()); }
  int64_t num_corrupted() const;
  // Samples whose training label differs from the true class of their image.
  int64_t num_label_changed() const;
};

// No noise: labels as in the dataset, image_source = identity.
NoiseMap clean_noise_map(const std::vector<int64_t>& labels);

// The reference's protocol: n = floor(N * fraction); perm = NumPy legacy
// `np.random.seed(seed); np.random.permutation(n)`; sample i < n shows the image of sample
// perm[i] and keeps its own label; samples >= n are clean. is_corrupted[i] = (i < n), exactly the
// set the reference treats as noisy, including the ~1/classes cases where both images share a
// class (num_label_changed() counts only real label changes).
NoiseMap image_permutation_noise(const std::vector<int64_t>& labels, double fraction,
                                 uint32_t seed);

// Symmetric noise: exactly floor(N * fraction) samples, chosen by a seeded shuffle, get a new
// label uniform over all classes (`exclude_true = false`, the new label may equal the old) or
// over the other classes (`exclude_true = true`, every chosen label changes).
NoiseMap symmetric_label_noise(const std::vector<int64_t>& labels, int64_t num_classes,
                               double fraction, bool exclude_true, uint64_t seed);

// Labels from a CSV file with a header row: `column` gives the label (e.g. worse_label of
// cifar10n-labels.csv). If `index_column` is non-empty (e.g. "orig_index"), it gives the dataset
// index of each row; otherwise row r labels sample r. Every sample must be covered exactly once,
// with a label in [0, num_classes) (checked here, naming the file's line).
NoiseMap file_label_noise(const std::vector<int64_t>& labels, const std::string& csv_path,
                          const std::string& column, const std::string& index_column, int64_t num_classes);

// A relabel file (written by dp-inspect --relabel, app/relabel.h) applied to a run's training set
// on top of its noise protocol: columns index, label (the label the run trains the sample with),
// suggested_label and action = keep | relabel | drop, one row per training sample; other columns
// (path, names, scores) are there for the person who edits it and are ignored.
struct Relabelling {
  NoiseMap map;               // the run's noise map with the relabels applied (dropped samples still in it)
  std::vector<int64_t> kept;  // training indices not dropped, ascending
  int64_t relabelled = 0, dropped = 0;
};

// Each row's `label` must be the one `noisy` gives that sample: a file written for another
// dataset, noise setting or seed is refused, naming the line. relabel sets label =
// suggested_label (in [0, num_classes)); original_label, is_corrupted and image_source stay.
Relabelling apply_relabel_file(const NoiseMap& noisy, const std::string& csv_path, int64_t num_classes);

// The noise map of the kept samples alone, numbered 0 .. kept.size() - 1 (a DatasetSubset of the
// training set): their labels, true labels and corruption flags. image_source becomes the identity,
// as the subset's sample i shows the image the run showed for kept[i].
NoiseMap kept_noise_map(const NoiseMap& map, const std::vector<int64_t>& kept);

// All labels of a dataset, in index order.
std::vector<int64_t> dataset_labels(const Dataset& dataset);

// A training view of a dataset with noise applied: label(i) = map.label[i] and load(i) returns
// the image of map.image_source[i] under index i.
class NoisyDataset final : public Dataset {
 public:
  NoisyDataset(std::shared_ptr<const Dataset> base, NoiseMap map);
  int64_t size() const override { return base_->size(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  int64_t label(int64_t index) const override;
  RawSample load(int64_t index) const override;
  std::string source(int64_t index) const override;
  SampleIdentity identity(int64_t index) const override;  // of the image shown under `index`
  const NoiseMap& noise_map() const { return map_; }

 private:
  std::shared_ptr<const Dataset> base_;
  NoiseMap map_;
};

}  // namespace dp::data
