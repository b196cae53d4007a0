#include "data/dataset.h"

#include "engine/error.h"

namespace dp::data {

void check_index(const Dataset& dataset, int64_t index, const char* dataset_name) {
  DP_CHECK(index >= 0 && index < dataset.size(),
           std::string(dataset_name) + ": sample index " + std::to_string(index) +
               " is out of range [0, " + std::to_string(dataset.size()) + ")",
           "indices come from the loader; check the sampler or shard settings");
}

}  // namespace dp::data
