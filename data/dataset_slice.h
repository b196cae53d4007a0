// A contiguous range of another dataset's samples, as a dataset of its own: how a data-parallel
// evaluation gives each rank its share without the training loader's sharding, which drops a last
// batch smaller than the number of ranks (an evaluation must see every sample exactly once).
#pragma once
#include <cstdint>
#include <memory>

#include "data/dataset.h"

namespace dp::data {

// Rank r of `world` takes samples [share_begin(n, r, world), share_begin(n, r + 1, world)): the
// shares are contiguous, in rank order, cover [0, n) and differ in size by at most one.
int64_t share_begin(int64_t n, int64_t rank, int64_t world);

class DatasetSlice final : public Dataset {
 public:
  // Samples [begin, end) of `base`, numbered 0 .. end - begin - 1 here.
  DatasetSlice(std::shared_ptr<const Dataset> base, int64_t begin, int64_t end);
  int64_t size() const override { return end_ - begin_; }
  int64_t num_classes() const override { return base_->num_classes(); }
  int64_t label(int64_t index) const override;
  // RawSample::index stays the base dataset's index: a sample's augmentation is keyed by it, so it
  // gets the pixels it gets in the whole dataset.
  RawSample load(int64_t index) const override;
  std::string source(int64_t index) const override;
  SampleIdentity identity(int64_t index) const override { return base_->identity(to_base(index)); }
  int64_t begin() const { return begin_; }  // this slice's index 0 in the base dataset

 private:
  int64_t to_base(int64_t index) const;
  std::shared_ptr<const Dataset> base_;
  int64_t begin_, end_;
};

}  // namespace dp::data
