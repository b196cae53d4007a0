// The datasets, label noise and transforms of a run, built from its configuration.
#pragma once
#include <memory>
#include <string>

#include "data/dataset.h"
#include "data/label_noise.h"
#include "data/transforms.h"
#include "app/config.h"

namespace dp::app {

struct RunData {
  std::shared_ptr<const data::Dataset> train;  // with label noise applied
  std::shared_ptr<const data::Dataset> test;
  data::NoiseMap noise;                        // per training sample
  int64_t relabelled = 0, dropped = 0;         // by data.relabel_file (the training set has no dropped sample)
  data::TransformSpec train_transform, test_transform;
  int64_t num_classes = 0;
};

// Validates paths and builds everything; throws dp::Error naming the config key at fault.
RunData make_run_data(const Config& config);

// The evaluation split alone (dp-eval): kind and path as in the [data] section.
std::shared_ptr<const data::Dataset> make_eval_dataset(const std::string& kind, const std::string& path,
                                                       int64_t image_size, uint64_t seed,
                                                       int64_t synthetic_size, int64_t num_classes,
                                                       data::TransformSpec& transform, double synthetic_noise = 0.25);

}  // namespace dp::app
