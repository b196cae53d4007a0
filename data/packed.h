// A packed dataset: each split is one file of encoded images back to back plus a CSV index, so a
// split is read with one open and one mapping instead of one open per image (60,000 for CIFAR-10),
// and a whole dataset travels as a few files. Written by dp-pack (write_packed_split).
//
//   DIR/classes.txt   class names in label order, one per line
//   DIR/SPLIT.jpgs    the encoded images (JPEG as taken from the source files), in index order
//   DIR/SPLIT.csv     header "index,offset,length,crc32,label,orig_index,source[,extra...]"; row r
//                     describes dataset index r: its byte range in SPLIT.jpgs (ranges are
//                     contiguous and cover the whole file), the CRC-32 of those bytes (8 hex
//                     digits), the clean label, its index in the source dataset's order, the source
//                     file's relative path; extra columns (e.g. CIFAR-10N's worse_label) are copied
//                     label columns that data.noise = "file" can read (noise_file = DIR/train.csv).
//
// SPLIT is "train" or "test". No quoting in the CSV: sources must not contain commas.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/dataset_kind.h"

namespace dp::data {

class PackedDataset final : public Dataset {
 public:
  // Checks the index against the image file (truncation, ranges, labels) and throws dp::Error
  // naming the file at fault.
  PackedDataset(const std::string& dir, const std::string& split);
  ~PackedDataset() override;
  PackedDataset(const PackedDataset&) = delete;
  PackedDataset& operator=(const PackedDataset&) = delete;

  int64_t size() const override { return static_cast<int64_t>(entries_.size()); }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  int64_t label(int64_t index) const override;
  // The encoded bytes, undecoded; their CRC-32 is checked (a mismatch names the file and row).
  RawSample load(int64_t index) const override;
  std::string source(int64_t index) const override;
  SampleIdentity identity(int64_t index) const override;  // source path, CRC-32 and length from the index
  const std::vector<std::string>& classes() const { return classes_; }
  int64_t orig_index(int64_t index) const;

 private:
  struct Entry {
    uint64_t offset = 0;
    uint64_t length = 0;
    uint32_t crc32 = 0;
    int64_t label = 0;
    int64_t orig_index = 0;
    std::string source;
  };
  std::string images_path_, index_path_;
  std::vector<std::string> classes_;
  std::vector<Entry> entries_;
  const uint8_t* mapped_ = nullptr;
  uint64_t mapped_size_ = 0;
};

// What to pack from a source dataset (an ImageFolderDataset, or any dataset whose load() returns
// encoded bytes).
struct PackOptions {
  // Keep the first `per_class` samples of each class in the source's index order (0: all).
  // For the CIFAR-10 JPEG export in CIFAR's original order this is train/<class>/NNNN.jpg with
  // NNNN < per_class, for each class.
  int64_t per_class = 0;
  // Paths written to the `source` column are made relative to this folder (empty: as loaded).
  std::string source_root;
  // Extra label columns copied from a CSV keyed by the source index (`key_column`, e.g.
  // cifar10n-labels.csv's orig_index).
  std::string labels_csv;
  std::string key_column = "orig_index";
  std::vector<std::string> label_columns;
};

struct PackReport {
  int64_t images = 0;
  uint64_t bytes = 0;
};

// Writes DIR/SPLIT.jpgs and DIR/SPLIT.csv (to temporary names, then renamed, so an interrupted
// run leaves no half-written pack) and DIR/classes.txt. The packed order is the source's index
// order restricted to the kept samples.
PackReport write_packed_split(const Dataset& source, const std::vector<std::string>& class_names,
                              const std::string& dir, const std::string& split, const PackOptions& options);

// data.dataset = "packed" (CIFAR transforms) or "packed-imagenet" (ImageNet transforms): the
// folder dp-pack wrote in data.path; class names from its classes.txt.
enum class PackedTransforms { kCifar, kImageNet };
DatasetKind packed_kind(PackedTransforms transforms);

}  // namespace dp::data
