#include "data/cifar_binary.h"

#include <zlib.h>

#include <filesystem>

#include "data/file_io.h"
#include "data/image_folder.h"
#include "engine/error.h"

namespace dp::data {

namespace fs = std::filesystem;

CifarBinaryDataset::CifarBinaryDataset(const std::string& directory, CifarVariant variant,
                                       bool train)
    : variant_(variant) {
  const bool c10 = variant == CifarVariant::kCifar10;
  std::vector<std::string> names;
  if (c10 && train)
    names = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
             "data_batch_5.bin"};
  else
    names = {c10 ? "test_batch.bin" : (train ? "train.bin" : "test.bin")};
  fs::path dir(directory);
  const fs::path nested = dir / (c10 ? "cifar-10-batches-bin" : "cifar-100-binary");
  if (!fs::exists(dir / names[0]) && fs::exists(nested / names[0])) dir = nested;

  const int64_t label_bytes = c10 ? 1 : 2;
  const int64_t record = label_bytes + kPixels;
  for (const auto& name : names) {
    const std::string path = (dir / name).string();
    DP_CHECK(fs::exists(path), "CIFAR file '" + path + "' not found",
             "download the binary version (cifar-10-binary.tar.gz / cifar-100-binary.tar.gz) and "
             "extract it into '" + directory + "'");
    const auto bytes = read_file_bytes(path);
    DP_CHECK(!bytes.empty() && static_cast<int64_t>(bytes.size()) % record == 0,
             "CIFAR file '" + path + "' has " + std::to_string(bytes.size()) +
                 " bytes, not a multiple of the " + std::to_string(record) + "-byte record",
             "the file is truncated or is not the binary CIFAR format (the Python pickles differ)");
    files_.push_back(path);
    file_start_.push_back(size());
    const int64_t count = static_cast<int64_t>(bytes.size()) / record;
    planar_.reserve(planar_.size() + static_cast<size_t>(count * kPixels));
    for (int64_t r = 0; r < count; ++r) {
      const uint8_t* rec = bytes.data() + r * record;
      const int64_t label = rec[label_bytes - 1];  // CIFAR-100: fine label is the second byte
      DP_CHECK(label < num_classes(),
               "CIFAR file '" + path + "' record " + std::to_string(r) + " has label " +
                   std::to_string(label),
               "the file is corrupt or belongs to the other CIFAR variant");
      labels_.push_back(label);
      planar_.insert(planar_.end(), rec + label_bytes, rec + record);
    }
  }
}

int64_t CifarBinaryDataset::label(int64_t index) const {
  check_index(*this, index, "CIFAR");
  return labels_[index];
}

RawSample CifarBinaryDataset::load(int64_t index) const {
  check_index(*this, index, "CIFAR");
  RawSample sample;
  sample.index = index;
  sample.label = labels_[index];
  sample.image = Image(kSide, kSide, 3);
  const uint8_t* planes = planar_.data() + index * kPixels;
  constexpr int64_t plane = kSide * kSide;
  uint8_t* out = sample.image.pixels.data();
  for (int64_t p = 0; p < plane; ++p) {
    out[3 * p + 0] = planes[p];
    out[3 * p + 1] = planes[plane + p];
    out[3 * p + 2] = planes[2 * plane + p];
  }
  return sample;
}

std::string CifarBinaryDataset::source(int64_t index) const {
  check_index(*this, index, "CIFAR");
  size_t f = file_start_.size() - 1;
  while (file_start_[f] > index) --f;
  return files_[f] + " record " + std::to_string(index - file_start_[f]);
}

DatasetKind cifar_binary_kind(CifarVariant variant) {
  const bool c10 = variant == CifarVariant::kCifar10;
  DatasetKind k;
  k.name = c10 ? "cifar10" : "cifar100";
  k.identity = "pixels";
  k.summary = c10 ? "CIFAR-10 binary batches in data.path (data_batch_1..5.bin, test_batch.bin)"
                  : "CIFAR-100 binary in data.path (train.bin, test.bin), fine labels";
  k.make = [variant](const DatasetRequest& r) {
    require_dataset_dir(r.path);
    return DatasetSplit{std::make_shared<CifarBinaryDataset>(r.path, variant, r.train),
                        r.train ? cifar_train_transform() : cifar_test_transform()};
  };
  k.class_names = [c10](const DatasetRequest& r) {
    if (c10) return cifar10_class_names();
    for (const char* sub : {"", "cifar-100-binary"}) {
      std::vector<std::string> names = class_names_file((fs::path(r.path) / sub / "fine_label_names.txt").string());
      if (names.size() == 100) return names;
    }
    return std::vector<std::string>{};
  };
  return k;
}

SampleIdentity CifarBinaryDataset::identity(int64_t index) const {
  check_index(*this, index, "CIFAR");
  size_t f = file_start_.size() - 1;
  while (file_start_[f] > index) --f;
  const Bytef* pixels = planar_.data() + static_cast<size_t>(index) * kPixels;
  return {std::filesystem::path(files_[f]).filename().string() + " record " + std::to_string(index - file_start_[f]),
          crc32(crc32(0L, Z_NULL, 0), pixels, static_cast<uInt>(kPixels))};
}

}  // namespace dp::data
