// The datasets, label noise and transforms of a run, built from its configuration through the
// dataset registry (data/registry.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "app/config.h"
#include "data/dataset.h"
#include "data/dataset_kind.h"
#include "data/label_noise.h"
#include "data/transforms.h"

namespace dp::app {

// The [data] section (and run.seed), typed: read once from the config, so that tools and the
// trainer never look a data key up themselves.
struct DataSettings {
  std::string kind = "synthetic", path;
  int64_t image_size = 32, num_classes = 0;
  int64_t synthetic_train_size = 0, synthetic_test_size = 0;
  double synthetic_noise = 0.25;
  uint64_t seed = 0;
  std::string index_order_csv;
  // Label noise on the training split.
  std::string noise = "none", noise_file, noise_column, noise_index_column;
  double rand_fraction = 0.0;
  std::string relabel_file;  // dp-inspect --relabel's file: fixed labels and dropped samples

  // What a split asks of the dataset kind.
  data::DatasetRequest request(bool train) const;
};

DataSettings make_data_settings(const Config& config);

struct RunData {
  std::shared_ptr<const data::Dataset> train;  // with label noise applied
  std::shared_ptr<const data::Dataset> train_clean;  // the same samples with their own labels
  std::shared_ptr<const data::Dataset> test;
  data::NoiseMap noise;                        // per training sample
  int64_t relabelled = 0, dropped = 0;         // by data.relabel_file (the training set has no dropped sample)
  data::TransformSpec train_transform, test_transform;
  int64_t num_classes = 0;
};

// Validates paths and builds everything; throws dp::Error naming the config key at fault.
RunData make_run_data(const DataSettings& settings);
inline RunData make_run_data(const Config& config) { return make_run_data(make_data_settings(config)); }

// The evaluation split alone (dp-eval) and its transforms.
data::DatasetSplit make_eval_split(const DataSettings& settings);

// Class names for reports (dp-eval, dp-inspect, the per-sample export), from the dataset kind
// without loading the dataset: the label numbers where the kind does not know them.
std::vector<std::string> class_names(const DataSettings& settings, int64_t num_classes);

}  // namespace dp::app
