// Images stored as files: the ImageNet-style class-folder layout, a flat folder with a labels
// file (the usual validation layout), and JPEG class folders such as the CIFAR-10 JPEG export.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/dataset_kind.h"

namespace dp::data {

struct ImageFolderOptions {
  std::string root;
  // Class names in label order. Empty: the sorted sub-folder names (torchvision's ImageFolder).
  std::vector<std::string> class_order;
  // With class_order (e.g. the training split's classes, for its validation split): a class may
  // have no folder here, and a folder that is not in class_order is an error.
  bool subset_of_classes = false;
  // Validation layout: images directly under `root`, labels given by this file, one
  // "filename<TAB or spaces>class" per line, class being a class name or an integer label.
  std::string labels_file;
  // Optional CSV fixing the index order (e.g. cifar10n-labels.csv): column `index_column` gives
  // each file's dataset index, column `path_column` its path. A path matches a file when it equals
  // the file's path relative to `root` or ends with "/" + that relative path, so "train/frog/0000.jpg"
  // matches root ".../train". Every file must appear exactly once.
  std::string index_order_csv;
  std::string index_column = "orig_index";
  std::string path_column = "path";
  // Lower-case file extensions that count as images.
  std::vector<std::string> extensions = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".webp"};
};

// Index order (documented, stable): without index_order_csv, classes in label order, files
// sorted by their path relative to the class folder (byte order, like Python's sorted()), which
// is torchvision's ImageFolder order; in the validation layout, files sorted by name.
class ImageFolderDataset final : public Dataset {
 public:
  explicit ImageFolderDataset(ImageFolderOptions options);
  int64_t size() const override { return static_cast<int64_t>(paths_.size()); }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  int64_t label(int64_t index) const override;
  RawSample load(int64_t index) const override;  // returns the encoded bytes, undecoded
  std::string source(int64_t index) const override;
  SampleIdentity identity(int64_t index) const override;  // relative path, file size (a stat)
  const std::vector<std::string>& classes() const { return classes_; }
  const std::string& path(int64_t index) const { return paths_[index]; }

 private:
  void scan_class_folders(const ImageFolderOptions& options);
  void read_labels_file(const ImageFolderOptions& options);
  void apply_index_order(const ImageFolderOptions& options);

  std::string root_;
  std::vector<std::string> classes_;
  std::vector<std::string> paths_;     // full paths
  std::vector<std::string> relative_;  // relative to root
  std::vector<int64_t> labels_;
};

// The sub-folder names of `root`, sorted: torchvision's ImageFolder class order.
std::vector<std::string> class_folder_names(const std::string& root);

// The CIFAR-10 class names in label order.
const std::vector<std::string>& cifar10_class_names();

// The CIFAR-10 JPEG export (train/<class>/NNNN.jpg, test/<class>/NNNN.jpg) under `extracted`.
// With `index_order_csv` (cifar10n-labels.csv, train only) indices are CIFAR's original training
// order, so CIFAR-10N labels and the reference's noise line up; without it the order is
// class-major (class in label order, then NNNN), the only order the test split has.
std::shared_ptr<ImageFolderDataset> cifar10_jpeg_folder(const std::string& extracted, bool train,
                                                       const std::string& index_order_csv = "");

// data.dataset = "imagefolder": data.path/train/<class>/ and data.path/val/<class>/ (the
// validation split's labels index the training split's classes), ImageNet transforms.
DatasetKind image_folder_kind();
// data.dataset = "cifar10-jpeg": cifar10_jpeg_folder, CIFAR transforms; DatasetRequest's
// index_order_csv orders the training split.
DatasetKind cifar10_jpeg_kind();

}  // namespace dp::data
