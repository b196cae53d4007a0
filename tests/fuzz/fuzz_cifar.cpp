// The CIFAR binary reader: the input is test_batch.bin of a CIFAR-10 and a CIFAR-100 folder.
#include <filesystem>

#include "data/cifar_binary.h"
#include "engine/error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dp::fuzz::write_input(data, size, "test_batch.bin");
  const std::string dir = std::filesystem::path(path).parent_path().string();
  for (auto variant : {dp::data::CifarVariant::kCifar10, dp::data::CifarVariant::kCifar100}) {
    try {
      dp::data::CifarBinaryDataset ds(dir, variant, false);
      for (int64_t i = 0; i < ds.size() && i < 4; ++i) {
        ds.load(i);
        if (ds.label(i) < 0 || ds.label(i) >= ds.num_classes()) __builtin_trap();
      }
    } catch (const dp::Error&) {
    }
  }
  return 0;
}
