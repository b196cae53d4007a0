#include "app/run_data.h"

#include <fmt/format.h>

#include "data/registry.h"
#include "data/dataset_subset.h"
#include "engine/error.h"

namespace dp::app {

data::DatasetRequest DataSettings::request(bool train) const {
  data::DatasetRequest r;
  r.path = path;
  r.train = train;
  r.image_size = image_size;
  r.seed = seed;
  r.synthetic_size = train ? synthetic_train_size : synthetic_test_size;
  r.num_classes = num_classes;
  r.synthetic_noise = synthetic_noise;
  r.index_order_csv = index_order_csv;
  return r;
}

DataSettings make_data_settings(const Config& c) {
  DataSettings s;
  s.kind = c.get_string("data.dataset");
  s.path = c.get_string("data.path");
  s.image_size = c.get_int("data.image_size");
  s.num_classes = c.get_int("data.num_classes");
  s.synthetic_train_size = c.get_int("data.synthetic_train_size");
  s.synthetic_test_size = c.get_int("data.synthetic_test_size");
  s.synthetic_noise = c.get_float("data.synthetic_noise");
  s.seed = static_cast<uint64_t>(c.get_int("run.seed"));
  s.index_order_csv = c.get_string("data.index_order_csv");
  s.noise = c.get_string("data.noise");
  s.noise_file = c.get_string("data.noise_file");
  s.noise_column = c.get_string("data.noise_column");
  s.noise_index_column = c.get_string("data.noise_index_column");
  s.rand_fraction = c.get_float("data.rand_fraction");
  s.relabel_file = c.get_string("data.relabel_file");
  return s;
}

data::DatasetSplit make_eval_split(const DataSettings& s) { return data::make_dataset_split(s.kind, s.request(false)); }

std::vector<std::string> class_names(const DataSettings& s, int64_t num_classes) {
  std::vector<std::string> names = data::dataset_class_names(s.kind, s.request(false));
  if (static_cast<int64_t>(names.size()) != num_classes) {
    names.clear();
    for (int64_t c = 0; c < num_classes; ++c) names.push_back(std::to_string(c));
  }
  return names;
}

RunData make_run_data(const DataSettings& s) {
  RunData r;
  const data::DatasetSplit train = data::make_dataset_split(s.kind, s.request(true));
  const data::DatasetSplit test = data::make_dataset_split(s.kind, s.request(false));
  r.train_transform = train.transform;
  r.test = test.dataset;
  r.test_transform = test.transform;
  const std::shared_ptr<const data::Dataset>& clean = train.dataset;
  r.num_classes = clean->num_classes();
  DP_CHECK(s.num_classes == 0 || s.num_classes == r.num_classes,
           fmt::format("config: data.num_classes = {} but the dataset has {} classes", s.num_classes, r.num_classes),
           "remove data.num_classes or make it match the dataset");

  std::vector<int64_t> labels = data::dataset_labels(*clean);
  const double fraction = s.rand_fraction;
  if (s.noise == "none") {
    DP_CHECK(fraction == 0.0, "config: data.rand_fraction > 0 but data.noise = \"none\"",
             "set data.noise = \"permute\" (the reference's protocol) or \"symmetric\"");
    r.noise = data::clean_noise_map(labels);
  } else if (s.noise == "permute") {
    r.noise = data::image_permutation_noise(labels, fraction, static_cast<uint32_t>(s.seed));
  } else if (s.noise == "symmetric" || s.noise == "symmetric-other") {
    r.noise = data::symmetric_label_noise(labels, r.num_classes, fraction, s.noise == "symmetric-other", s.seed);
  } else {  // file
    DP_CHECK(!s.noise_file.empty() && !s.noise_column.empty(),
             "config: data.noise = \"file\" needs data.noise_file and data.noise_column",
             "e.g. noise_file = \"../shared/data/cifar10n-labels.csv\", noise_column = \"worse_label\"");
    r.noise = data::file_label_noise(labels, s.noise_file, s.noise_column, s.noise_index_column, r.num_classes);
  }
  r.train_clean = clean;
  // The relabel file of a curriculum run (dp-inspect --relabel) on top of the noise protocol: the
  // run trains on the fixed labels, without the dropped samples (then numbered among the kept).
  if (s.relabel_file.empty()) {
    r.train = std::make_shared<data::NoisyDataset>(clean, r.noise);
    return r;
  }
  data::Relabelling fixed = data::apply_relabel_file(r.noise, s.relabel_file, r.num_classes);
  auto relabelled = std::make_shared<data::NoisyDataset>(clean, fixed.map);
  r.relabelled = fixed.relabelled;
  r.dropped = fixed.dropped;
  if (fixed.dropped == 0) {
    r.noise = std::move(fixed.map);
    r.train = relabelled;
  } else {
    r.noise = data::kept_noise_map(fixed.map, fixed.kept);
    r.train = std::make_shared<data::DatasetSubset>(relabelled, std::move(fixed.kept));
  }
  return r;
}

}  // namespace dp::app
