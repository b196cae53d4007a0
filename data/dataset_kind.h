// A dataset kind: what data.dataset names ("synthetic", "cifar10", ...), how it builds one split
// of a run and that split's transforms, and its class names. Each kind is written beside its
// dataset (e.g. synthetic_kind() in data/synthetic.h) and listed once in data/registry.cpp.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"

namespace dp::data {

// What a run asks of a kind: the [data] settings a split needs, typed (app/ reads the config).
struct DatasetRequest {
  std::string path;            // the dataset folder (kinds that read files)
  bool train = true;           // the training split, else the evaluation split
  int64_t image_size = 32;     // ImageNet-style kinds and synthetic images
  uint64_t seed = 0;           // synthetic images
  int64_t synthetic_size = 0;  // synthetic: samples in this split
  int64_t num_classes = 0;     // synthetic: classes (0: 10)
  double synthetic_noise = 0.25;
  std::string index_order_csv;  // cifar10-jpeg, training split: CIFAR's original order
};

struct DatasetSplit {
  std::shared_ptr<const Dataset> dataset;
  TransformSpec transform;  // the split's transforms (augmenting for training)
};

struct DatasetKind {
  std::string name;
  std::string summary;      // one line for help texts and the config reference
  bool reads_files = true;  // needs data.path
  // What Dataset::identity() hashes for this kind, in words, for messages about changed data
  // ("the same names and labels but other file sizes").
  std::string identity = "contents";
  std::function<DatasetSplit(const DatasetRequest&)> make;
  // Class names in label order, without reading any image (a small index file at most): the
  // kind's fixed names, or the ones its files list; empty when unknown (reports then number
  // the classes).
  std::function<std::vector<std::string>(const DatasetRequest&)> class_names;
};

// Throws dp::Error naming data.path (or `what`) when `path` is not a folder.
void require_dataset_dir(const std::string& path, const std::string& what = "data.path");

// Class names listed one per line in a file (empty lines skipped); empty when it cannot be read.
std::vector<std::string> class_names_file(const std::string& path);

}  // namespace dp::data
