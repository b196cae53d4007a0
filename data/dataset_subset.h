// Some of another dataset's samples, in a given order, as a dataset of its own: the training set
// left when a relabel file drops samples (data/label_noise.h, apply_relabel_file).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "data/dataset.h"

namespace dp::data {

class DatasetSubset final : public Dataset {
 public:
  // Sample i here is sample indices[i] of `base`; indices must be distinct and inside it.
  DatasetSubset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  int64_t num_classes() const override { return base_->num_classes(); }
  int64_t label(int64_t index) const override;
  // RawSample::index stays the base dataset's index (as DatasetSlice's): the augmentation keyed
  // by it is the one the sample gets in the whole dataset.
  RawSample load(int64_t index) const override;
  std::string source(int64_t index) const override;

 private:
  int64_t to_base(int64_t index) const;
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
};

}  // namespace dp::data
