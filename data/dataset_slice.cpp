#include "data/dataset_slice.h"

#include <fmt/format.h>

#include <algorithm>

#include "engine/error.h"

namespace dp::data {

int64_t share_begin(int64_t n, int64_t rank, int64_t world) {
  DP_CHECK(world >= 1 && rank >= 0 && rank <= world && n >= 0,
           fmt::format("share_begin: rank {} of {} ranks over {} samples", rank, world, n),
           "rank lies in [0, world] (world itself gives the end of the last share)");
  return n / world * rank + std::min(rank, n % world);  // the first n % world shares are one longer
}

DatasetSlice::DatasetSlice(std::shared_ptr<const Dataset> base, int64_t begin, int64_t end)
    : base_(std::move(base)), begin_(begin), end_(end) {
  DP_CHECK(base_ != nullptr, "DatasetSlice of no dataset", "pass the dataset to slice");
  DP_CHECK(0 <= begin_ && begin_ <= end_ && end_ <= base_->size(),
           fmt::format("DatasetSlice [{}, {}) of a dataset of {} samples", begin_, end_, base_->size()),
           "the range must lie inside the dataset (see share_begin)");
}

int64_t DatasetSlice::to_base(int64_t index) const {
  check_index(*this, index, "dataset slice");
  return begin_ + index;
}

int64_t DatasetSlice::label(int64_t index) const { return base_->label(to_base(index)); }
RawSample DatasetSlice::load(int64_t index) const { return base_->load(to_base(index)); }
std::string DatasetSlice::source(int64_t index) const { return base_->source(to_base(index)); }

}  // namespace dp::data
