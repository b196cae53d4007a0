#include "data/registry.h"

#include <fmt/format.h>

#include <filesystem>

#include "data/cifar_binary.h"
#include "data/file_io.h"
#include "data/image_folder.h"
#include "data/packed.h"
#include "data/synthetic.h"
#include "engine/error.h"

namespace dp::data {

const std::vector<DatasetKind>& dataset_kinds() {
  static const std::vector<DatasetKind> kinds = {
      synthetic_kind(),
      cifar_binary_kind(CifarVariant::kCifar10),
      cifar_binary_kind(CifarVariant::kCifar100),
      cifar10_jpeg_kind(),
      image_folder_kind(),
      packed_kind(PackedTransforms::kCifar),
      packed_kind(PackedTransforms::kImageNet),
  };
  return kinds;
}

std::vector<std::string> dataset_kind_names() {
  std::vector<std::string> names;
  for (const DatasetKind& k : dataset_kinds()) names.push_back(k.name);
  return names;
}

const DatasetKind& dataset_kind(const std::string& name) {
  for (const DatasetKind& k : dataset_kinds())
    if (k.name == name) return k;
  DP_THROW(fmt::format("unknown dataset kind \"{}\"", name),
           fmt::format("use one of: {}", fmt::join(dataset_kind_names(), ", ")));
}

DatasetSplit make_dataset_split(const std::string& kind, const DatasetRequest& request) {
  return dataset_kind(kind).make(request);
}

std::vector<std::string> dataset_class_names(const std::string& kind, const DatasetRequest& request) {
  return dataset_kind(kind).class_names(request);
}

void require_dataset_dir(const std::string& path, const std::string& what) {
  DP_CHECK(!path.empty(), fmt::format("config: {} is empty but the dataset needs files", what),
           "set it to the dataset folder");
  DP_CHECK(std::filesystem::is_directory(path), fmt::format("config: {} = \"{}\" is not a folder", what, path),
           "check the path (relative paths are relative to the working directory)");
}

std::vector<std::string> class_names_file(const std::string& path) {
  std::vector<std::string> names;
  if (!std::filesystem::is_regular_file(path)) return names;
  for (const std::string& line : read_lines(path))
    if (!line.empty()) names.push_back(line);
  return names;
}

}  // namespace dp::data
