// Label CSV files (data.noise = "file"): by row and keyed by an index column. Property: an
// accepted file gives every one of the 8 samples a label in [0, 10). The same bytes as a relabel
// file (data.relabel_file, quoted CSV through libcsv): an accepted one keeps some samples, in
// order, and leaves every label in [0, 10).
#include "data/label_noise.h"
#include "engine/error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dp::fuzz::write_input(data, size, "labels.csv");
  const std::vector<int64_t> labels = {0, 1, 2, 3, 4, 5, 6, 7};
  for (const char* index_column : {"", "orig_index"}) {
    try {
      dp::data::NoiseMap m = dp::data::file_label_noise(labels, path, "label", index_column, 10);
      if (m.size() != 8) __builtin_trap();
      for (int64_t l : m.label)
        if (l < 0 || l >= 10) __builtin_trap();
    } catch (const dp::Error&) {
    }
  }
  try {
    const dp::data::Relabelling r = dp::data::apply_relabel_file(dp::data::clean_noise_map(labels), path, 10);
    if (r.kept.empty() || static_cast<int64_t>(r.kept.size()) + r.dropped != 8) __builtin_trap();
    for (size_t i = 1; i < r.kept.size(); ++i)
      if (r.kept[i] <= r.kept[i - 1]) __builtin_trap();
    for (int64_t l : r.map.label)
      if (l < 0 || l >= 10) __builtin_trap();
  } catch (const dp::Error&) {
  }
  return 0;
}
