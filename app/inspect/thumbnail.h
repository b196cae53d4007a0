// A training sample's image as a small JPEG for the report: read through the dataset (so any kind
// the run used works), decoded at a reduced DCT scale when it is much larger than the thumbnail,
// shrunk with OpenCV's area filter to fit `max_side`, encoded with TurboJPEG. Only the shown
// samples are read, so an ImageNet-sized run costs a few hundred decodes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace dp::app::inspect {

struct Thumbnail {
  std::vector<uint8_t> jpeg;  // empty when the image could not be read: see error
  int width = 0, height = 0;
  std::string error;          // why there is no image (a moved file, a damaged one...)
};

// Never throws for a sample that cannot be read: the error says why, for a placeholder.
Thumbnail make_thumbnail(const data::Dataset& dataset, int64_t index, int max_side);

}  // namespace dp::app::inspect
