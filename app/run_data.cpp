#include "app/run_data.h"

#include <fmt/format.h>

#include <filesystem>

#include "data/cifar_binary.h"
#include "data/dataset_subset.h"
#include "data/image_folder.h"
#include "data/packed.h"
#include "data/synthetic.h"
#include "engine/error.h"

namespace dp::app {

namespace {

namespace fs = std::filesystem;

void require_dir(const std::string& path, const std::string& key) {
  DP_CHECK(!path.empty(), fmt::format("config: {} is empty but the dataset needs files", key),
           "set it to the dataset folder");
  DP_CHECK(fs::is_directory(path), fmt::format("config: {} = \"{}\" is not a folder", key, path),
           "check the path (relative paths are relative to the working directory)");
}

// The synthetic images are centred on mid-grey with moderate contrast.
data::TransformSpec synthetic_transform(bool train, int64_t size) {
  data::TransformSpec t = train ? data::cifar_train_transform() : data::cifar_test_transform();
  t.height = t.width = size;
  if (!train) t.geometry = data::Geometry::kNone;
  t.mean = {0.5f, 0.5f, 0.5f};
  t.std = {0.25f, 0.25f, 0.25f};
  return t;
}

std::shared_ptr<const data::Dataset> make_split(const std::string& kind, const std::string& path,
                                                bool train, int64_t image_size, uint64_t seed,
                                                int64_t synthetic_size, int64_t num_classes,
                                                const std::string& index_order_csv,
                                                data::TransformSpec& transform, double synthetic_noise) {
  if (kind == "synthetic") {
    data::SyntheticOptions o;
    o.noise = synthetic_noise;
    o.size = synthetic_size;
    o.num_classes = num_classes > 0 ? num_classes : 10;
    o.height = o.width = image_size;
    o.seed = seed;
    o.split = train ? 0 : 1;  // same classes, other samples
    transform = synthetic_transform(train, image_size);
    return std::make_shared<data::SyntheticDataset>(o);
  }
  if (kind == "cifar10" || kind == "cifar100") {
    require_dir(path, "data.path");
    transform = train ? data::cifar_train_transform() : data::cifar_test_transform();
    return std::make_shared<data::CifarBinaryDataset>(
        path, kind == "cifar10" ? data::CifarVariant::kCifar10 : data::CifarVariant::kCifar100, train);
  }
  if (kind == "cifar10-jpeg") {
    require_dir(path, "data.path");
    transform = train ? data::cifar_train_transform() : data::cifar_test_transform();
    return data::cifar10_jpeg_folder(path, train, train ? index_order_csv : "");
  }
  if (kind == "packed" || kind == "packed-imagenet") {  // a folder written by dp-pack
    require_dir(path, "data.path");
    if (kind == "packed")
      transform = train ? data::cifar_train_transform() : data::cifar_test_transform();
    else
      transform = train ? data::imagenet_train_transform(image_size)
                        : data::imagenet_val_transform(image_size * 256 / 224, image_size);
    return std::make_shared<data::PackedDataset>(path, train ? "train" : "test");
  }
  if (kind == "imagefolder") {
    std::string split = (fs::path(path) / (train ? "train" : "val")).string();
    require_dir(split, train ? "data.path (its train/ folder)" : "data.path (its val/ folder)");
    transform = train ? data::imagenet_train_transform(image_size)
                      : data::imagenet_val_transform(image_size * 256 / 224, image_size);
    data::ImageFolderOptions o;
    o.root = split;
    // The validation split's labels index the training split's classes (its own sorted list
    // would shift every label after a missing class).
    const std::string train_split = (fs::path(path) / "train").string();
    if (!train && fs::is_directory(train_split)) {
      o.class_order = data::class_folder_names(train_split);
      o.subset_of_classes = true;
    }
    return std::make_shared<data::ImageFolderDataset>(o);
  }
  DP_THROW(fmt::format("config: unknown data.dataset \"{}\"", kind),
           "use synthetic, cifar10, cifar100, cifar10-jpeg, imagefolder, packed or packed-imagenet");
}

}  // namespace

std::shared_ptr<const data::Dataset> make_eval_dataset(const std::string& kind, const std::string& path,
                                                       int64_t image_size, uint64_t seed,
                                                       int64_t synthetic_size, int64_t num_classes,
                                                       data::TransformSpec& transform, double synthetic_noise) {
  return make_split(kind, path, false, image_size, seed, synthetic_size, num_classes, "", transform,
                    synthetic_noise);
}

RunData make_run_data(const Config& c) {
  RunData r;
  const std::string kind = c.get_string("data.dataset");
  const std::string path = c.get_string("data.path");
  const auto seed = static_cast<uint64_t>(c.get_int("run.seed"));
  const int64_t size = c.get_int("data.image_size");
  const int64_t classes = c.get_int("data.num_classes");
  std::shared_ptr<const data::Dataset> clean =
      make_split(kind, path, true, size, seed, c.get_int("data.synthetic_train_size"), classes,
                 c.get_string("data.index_order_csv"), r.train_transform, c.get_float("data.synthetic_noise"));
  r.test = make_split(kind, path, false, size, seed, c.get_int("data.synthetic_test_size"), classes, "",
                      r.test_transform, c.get_float("data.synthetic_noise"));
  r.num_classes = clean->num_classes();
  DP_CHECK(classes == 0 || classes == r.num_classes,
           fmt::format("config: data.num_classes = {} but the dataset has {} classes", classes, r.num_classes),
           "remove data.num_classes or make it match the dataset");

  std::vector<int64_t> labels = data::dataset_labels(*clean);
  const std::string noise = c.get_string("data.noise");
  const double fraction = c.get_float("data.rand_fraction");
  if (noise == "none") {
    DP_CHECK(fraction == 0.0, "config: data.rand_fraction > 0 but data.noise = \"none\"",
             "set data.noise = \"permute\" (the reference's protocol) or \"symmetric\"");
    r.noise = data::clean_noise_map(labels);
  } else if (noise == "permute") {
    r.noise = data::image_permutation_noise(labels, fraction, static_cast<uint32_t>(seed));
  } else if (noise == "symmetric" || noise == "symmetric-other") {
    r.noise = data::symmetric_label_noise(labels, r.num_classes, fraction, noise == "symmetric-other", seed);
  } else {  // file
    DP_CHECK(!c.get_string("data.noise_file").empty() && !c.get_string("data.noise_column").empty(),
             "config: data.noise = \"file\" needs data.noise_file and data.noise_column",
             "e.g. noise_file = \"../shared/data/cifar10n-labels.csv\", noise_column = \"worse_label\"");
    r.noise = data::file_label_noise(labels, c.get_string("data.noise_file"), c.get_string("data.noise_column"),
                                     c.get_string("data.noise_index_column"), r.num_classes);
  }
  // The relabel file of a curriculum run (dp-inspect --relabel) on top of the noise protocol: the
  // run trains on the fixed labels, without the dropped samples (then numbered among the kept).
  const std::string relabel_file = c.get_string("data.relabel_file");
  if (relabel_file.empty()) {
    r.train = std::make_shared<data::NoisyDataset>(clean, r.noise);
    return r;
  }
  data::Relabelling fixed = data::apply_relabel_file(r.noise, relabel_file, r.num_classes);
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
