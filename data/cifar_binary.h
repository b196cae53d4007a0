// CIFAR-10 / CIFAR-100 in the official binary format, held in memory (150 MB for the train split).
// Index order is the files' order: CIFAR's original order, which the reference's noise uses.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/dataset_kind.h"

namespace dp::data {

enum class CifarVariant { kCifar10, kCifar100 };

class CifarBinaryDataset final : public Dataset {
 public:
  // `directory` holds data_batch_1..5.bin + test_batch.bin (CIFAR-10) or train.bin + test.bin
  // (CIFAR-100), directly or in the archive's own subfolder (cifar-10-batches-bin,
  // cifar-100-binary). Records: CIFAR-10 = label byte + 3072 pixel bytes; CIFAR-100 = coarse
  // byte + fine byte + 3072 bytes (the fine label is used). Pixels are planar R, G, B 32x32.
  CifarBinaryDataset(const std::string& directory, CifarVariant variant, bool train);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  int64_t num_classes() const override { return variant_ == CifarVariant::kCifar10 ? 10 : 100; }
  int64_t label(int64_t index) const override;
  RawSample load(int64_t index) const override;
  std::string source(int64_t index) const override;
  SampleIdentity identity(int64_t index) const override;  // file name and record, CRC-32 of the pixels

  static constexpr int64_t kSide = 32;
  static constexpr int64_t kPixels = 3 * kSide * kSide;

 private:
  CifarVariant variant_;
  std::vector<std::string> files_;
  std::vector<int64_t> file_start_;  // first index of each file, for source()
  std::vector<int64_t> labels_;
  std::vector<uint8_t> planar_;  // size() * 3072 bytes, CHW per image as stored
};

// data.dataset = "cifar10" / "cifar100": the binary distribution in data.path, CIFAR transforms;
// class names: CIFAR-10's, CIFAR-100's fine_label_names.txt when the folder has it.
DatasetKind cifar_binary_kind(CifarVariant variant);

}  // namespace dp::data
