#include "data/image_folder.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <unordered_map>

#include "data/file_io.h"
#include "engine/error.h"

namespace dp::data {

namespace fs = std::filesystem;

static std::string lower(std::string text) {
  for (char& ch : text) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return text;
}

static bool is_image(const fs::path& path, const std::vector<std::string>& extensions) {
  const std::string ext = lower(path.extension().string());
  return std::find(extensions.begin(), extensions.end(), ext) != extensions.end();
}

// Files under `dir` (recursively, following links), as paths relative to `dir`, sorted bytewise.
// A symlink loop or an unreadable folder is an error naming the path (not a raw filesystem_error).
static std::vector<std::string> image_files(const fs::path& dir,
                                            const std::vector<std::string>& extensions) {
  std::vector<std::string> files;
  try {
    for (const auto& entry :
         fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink)) {
      if (entry.is_regular_file() && is_image(entry.path(), extensions))
        files.push_back(fs::relative(entry.path(), dir).generic_string());
    }
  } catch (const fs::filesystem_error& e) {
    DP_THROW("cannot list the images under '" + dir.string() + "': " + e.code().message() +
                 (e.path1().empty() ? "" : " ('" + e.path1().string() + "')"),
             "check the folder's permissions and that no symbolic link points back into it");
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> class_folder_names(const std::string& root) {
  std::vector<std::string> names;
  try {
    for (const auto& entry : fs::directory_iterator(root))
      if (entry.is_directory()) names.push_back(entry.path().filename().string());
  } catch (const fs::filesystem_error& e) {
    DP_THROW("cannot list the class folders of '" + root + "': " + e.code().message(),
             "check the folder's permissions");
  }
  std::sort(names.begin(), names.end());
  return names;
}

ImageFolderDataset::ImageFolderDataset(ImageFolderOptions options) : root_(options.root) {
  DP_CHECK(fs::is_directory(root_), "image folder '" + root_ + "' does not exist",
           "pass the folder that holds the class sub-folders (or the images, with a labels file)");
  if (options.labels_file.empty())
    scan_class_folders(options);
  else
    read_labels_file(options);
  DP_CHECK(!paths_.empty(), "image folder '" + root_ + "' holds no images",
           "expected files ending in .jpg/.jpeg/.png under class sub-folders");
  if (!options.index_order_csv.empty()) apply_index_order(options);
}

void ImageFolderDataset::scan_class_folders(const ImageFolderOptions& options) {
  classes_ = options.class_order;
  if (classes_.empty()) classes_ = class_folder_names(root_);
  if (options.subset_of_classes) {
    // Labels are indices into the given (training) class list: a folder outside it would get a
    // label of another class, so it is an error; a class without a folder has no samples here.
    std::string known;
    for (const auto& c : classes_) known += (known.empty() ? "" : ", ") + c;
    for (const auto& folder : class_folder_names(root_))
      DP_CHECK(std::find(classes_.begin(), classes_.end(), folder) != classes_.end(),
               "class folder '" + (fs::path(root_) / folder).string() + "' is not one of the training set's " +
                   std::to_string(classes_.size()) + " classes",
               "rename or remove it; the training classes are: " + (known.size() > 400 ? known.substr(0, 400) + "..." : known));
  }
  for (size_t c = 0; c < classes_.size(); ++c) {
    const fs::path dir = fs::path(root_) / classes_[c];
    if (options.subset_of_classes && !fs::is_directory(dir)) continue;
    DP_CHECK(fs::is_directory(dir), "class folder '" + dir.string() + "' does not exist",
             "the class list names a folder that is missing under '" + root_ + "'");
    for (const auto& rel : image_files(dir, options.extensions)) {
      relative_.push_back(classes_[c] + "/" + rel);
      paths_.push_back((dir / rel).string());
      labels_.push_back(static_cast<int64_t>(c));
    }
  }
}

void ImageFolderDataset::read_labels_file(const ImageFolderOptions& options) {
  const auto lines = read_lines(options.labels_file);
  std::map<std::string, std::string> class_of;  // sorted by file name
  for (size_t l = 0; l < lines.size(); ++l) {
    const std::string& line = lines[l];
    if (line.empty()) continue;
    // A tab separates name and class when present (names may contain spaces); otherwise the last
    // run of spaces does.
    size_t split = line.find('\t');
    if (split == std::string::npos) split = line.find_last_of(' ');
    DP_CHECK(split != std::string::npos && split > 0,
             "labels file '" + options.labels_file + "' line " + std::to_string(l + 1) +
                 " is not 'filename<TAB>class'",
             "fix the labels file");
    std::string name = line.substr(0, split);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
    std::string cls = line.substr(line.find_first_not_of(" \t", split));
    class_of[name] = cls;
  }
  const bool numeric = std::all_of(class_of.begin(), class_of.end(), [](const auto& kv) {
    return !kv.second.empty() && std::all_of(kv.second.begin(), kv.second.end(), ::isdigit);
  });
  classes_ = options.class_order;
  if (classes_.empty() && !numeric) {
    for (const auto& kv : class_of) classes_.push_back(kv.second);
    std::sort(classes_.begin(), classes_.end());
    classes_.erase(std::unique(classes_.begin(), classes_.end()), classes_.end());
  }
  std::unordered_map<std::string, int64_t> class_index;
  for (size_t c = 0; c < classes_.size(); ++c) class_index[classes_[c]] = static_cast<int64_t>(c);
  int64_t max_label = -1;
  for (const auto& [name, cls] : class_of) {
    int64_t label;
    auto it = class_index.find(cls);
    if (it != class_index.end()) {
      label = it->second;
    } else {
      DP_CHECK(numeric, "labels file '" + options.labels_file + "': class '" + cls + "' of '" +
                            name + "' is not in the class list",
               "use the class list of the training split");
      label = std::stoll(cls);
    }
    max_label = std::max(max_label, label);
    const fs::path path = fs::path(root_) / name;
    DP_CHECK(fs::exists(path), "labels file '" + options.labels_file + "' names '" + name +
                                   "', which is not in '" + root_ + "'",
             "check that the labels file belongs to this folder");
    relative_.push_back(name);
    paths_.push_back(path.string());
    labels_.push_back(label);
  }
  if (classes_.empty())
    for (int64_t c = 0; c <= max_label; ++c) classes_.push_back(std::to_string(c));
}

void ImageFolderDataset::apply_index_order(const ImageFolderOptions& options) {
  const auto lines = read_lines(options.index_order_csv);
  DP_CHECK(!lines.empty(), "index-order file '" + options.index_order_csv + "' is empty",
           "it needs a header row");
  const auto header = split_csv_line(lines[0]);
  auto col = [&](const std::string& name) {
    auto it = std::find(header.begin(), header.end(), name);
    DP_CHECK(it != header.end(),
             "index-order file '" + options.index_order_csv + "' has no column '" + name + "'",
             "set index_column / path_column to its column names");
    return static_cast<size_t>(it - header.begin());
  };
  const size_t index_col = col(options.index_column), path_col = col(options.path_column);
  std::unordered_map<std::string, int64_t> position;
  for (size_t i = 0; i < relative_.size(); ++i) position[relative_[i]] = static_cast<int64_t>(i);

  const auto n = static_cast<int64_t>(paths_.size());
  std::vector<int64_t> order(static_cast<size_t>(n), -1);  // new index -> old position
  int64_t rows = 0;
  for (size_t l = 1; l < lines.size(); ++l) {
    if (lines[l].empty()) continue;
    const auto fields = split_csv_line(lines[l]);
    DP_CHECK(fields.size() > std::max(index_col, path_col),
             "index-order file '" + options.index_order_csv + "' line " + std::to_string(l + 1) +
                 " is short",
             "fix or regenerate the file");
    const int64_t index = std::stoll(fields[index_col]);
    std::string path = fields[path_col];
    auto it = position.find(path);
    while (it == position.end()) {  // strip leading components: "train/frog/0000.jpg" -> "frog/0000.jpg"
      const size_t slash = path.find('/');
      if (slash == std::string::npos) break;
      path = path.substr(slash + 1);
      it = position.find(path);
    }
    DP_CHECK(it != position.end(),
             "index-order file '" + options.index_order_csv + "' names '" + fields[path_col] +
                 "', which is not under '" + root_ + "'",
             "use the order file of this split (cifar10n-labels.csv covers the training split only)");
    DP_CHECK(index >= 0 && index < n && order[index] < 0,
             "index-order file '" + options.index_order_csv + "': index " + std::to_string(index) +
                 " is out of range or repeated",
             "it must list each of the " + std::to_string(n) + " files exactly once");
    order[index] = it->second;
    ++rows;
  }
  DP_CHECK(rows == n,
           "index-order file '" + options.index_order_csv + "' lists " + std::to_string(rows) +
               " files, the folder has " + std::to_string(n),
           "use the order file that belongs to this folder");
  auto permute = [&](auto& values) {
    auto copy = values;
    for (int64_t i = 0; i < n; ++i) values[i] = copy[order[i]];
  };
  permute(paths_);
  permute(relative_);
  permute(labels_);
}

int64_t ImageFolderDataset::label(int64_t index) const {
  check_index(*this, index, "image folder");
  return labels_[index];
}

RawSample ImageFolderDataset::load(int64_t index) const {
  check_index(*this, index, "image folder");
  RawSample sample;
  sample.index = index;
  sample.label = labels_[index];
  sample.source = paths_[index];
  sample.encoded = read_file_bytes(paths_[index]);
  return sample;
}

std::string ImageFolderDataset::source(int64_t index) const {
  check_index(*this, index, "image folder");
  return paths_[index];
}

SampleIdentity ImageFolderDataset::identity(int64_t index) const {
  check_index(*this, index, "image folder");
  struct stat st {};
  // A missing file has no size: it reads as a content change (and fails when loaded).
  const uint64_t size = ::stat(paths_[index].c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : ~uint64_t{0};
  return {relative_[index], size};
}

const std::vector<std::string>& cifar10_class_names() {
  static const std::vector<std::string> names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                 "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

std::shared_ptr<ImageFolderDataset> cifar10_jpeg_folder(const std::string& extracted, bool train,
                                                       const std::string& index_order_csv) {
  ImageFolderOptions options;
  options.root = (fs::path(extracted) / (train ? "train" : "test")).string();
  options.class_order = cifar10_class_names();
  options.index_order_csv = index_order_csv;
  return std::make_shared<ImageFolderDataset>(options);
}

DatasetKind image_folder_kind() {
  DatasetKind k;
  k.name = "imagefolder";
  k.identity = "file sizes";
  k.summary = "class folders in data.path/train and data.path/val (torchvision's ImageFolder), ImageNet transforms";
  k.make = [](const DatasetRequest& r) {
    const std::string split = (fs::path(r.path) / (r.train ? "train" : "val")).string();
    require_dataset_dir(split, r.train ? "data.path (its train/ folder)" : "data.path (its val/ folder)");
    ImageFolderOptions o;
    o.root = split;
    // The validation split's labels index the training split's classes (its own sorted list
    // would shift every label after a missing class).
    const std::string train_split = (fs::path(r.path) / "train").string();
    if (!r.train && fs::is_directory(train_split)) {
      o.class_order = class_folder_names(train_split);
      o.subset_of_classes = true;
    }
    return DatasetSplit{std::make_shared<ImageFolderDataset>(o),
                        r.train ? imagenet_train_transform(r.image_size)
                                : imagenet_val_transform(r.image_size * 256 / 224, r.image_size)};
  };
  k.class_names = [](const DatasetRequest& r) {
    for (const char* split : {"train", "val"})  // the training split's classes label both
      if (fs::is_directory(fs::path(r.path) / split)) return class_folder_names((fs::path(r.path) / split).string());
    return std::vector<std::string>{};
  };
  return k;
}

DatasetKind cifar10_jpeg_kind() {
  DatasetKind k;
  k.name = "cifar10-jpeg";
  k.identity = "file sizes";
  k.summary = "the CIFAR-10 JPEG export in data.path (train/<class>/, test/<class>/), CIFAR transforms";
  k.make = [](const DatasetRequest& r) {
    require_dataset_dir(r.path);
    return DatasetSplit{cifar10_jpeg_folder(r.path, r.train, r.train ? r.index_order_csv : ""),
                        r.train ? cifar_train_transform() : cifar_test_transform()};
  };
  k.class_names = [](const DatasetRequest&) { return cifar10_class_names(); };
  return k;
}

}  // namespace dp::data
