#include "data/dataset_subset.h"

#include <fmt/format.h>

#include "engine/error.h"

namespace dp::data {

DatasetSubset::DatasetSubset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
  DP_CHECK(base_ != nullptr, "DatasetSubset of no dataset", "pass the dataset to take samples from");
  std::vector<uint8_t> taken(static_cast<size_t>(base_->size()), 0);
  for (size_t i = 0; i < indices_.size(); ++i) {
    const int64_t b = indices_[i];
    DP_CHECK(b >= 0 && b < base_->size() && !taken[static_cast<size_t>(b)],
             fmt::format("DatasetSubset: entry {} is sample {}, outside the {} samples or taken twice", i, b,
                         base_->size()),
             "pass distinct indices of the base dataset");
    taken[static_cast<size_t>(b)] = 1;
  }
}

int64_t DatasetSubset::to_base(int64_t index) const {
  check_index(*this, index, "dataset subset");
  return indices_[static_cast<size_t>(index)];
}

int64_t DatasetSubset::label(int64_t index) const { return base_->label(to_base(index)); }
RawSample DatasetSubset::load(int64_t index) const { return base_->load(to_base(index)); }
std::string DatasetSubset::source(int64_t index) const { return base_->source(to_base(index)); }

}  // namespace dp::data
