// The dataset contract: a fixed, documented order of samples, each with an int64 label and its
// index in that order (the "instance id" the data parameters are keyed by).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace dp::data {

// What a dataset hands the loader for one sample. Either `image` is filled (in-memory datasets)
// or `encoded` holds the file's bytes, so the loader can choose a DCT scale before decoding.
struct RawSample {
  int64_t index = 0;
  int64_t label = 0;
  Image image;
  std::vector<uint8_t> encoded;
  std::string source;  // file path (or a description) for error messages
};

// What the run's data fingerprint (app/data_fingerprint.h) records of a sample without decoding
// it: its name within the dataset (relative to the dataset's folder, so that a moved dataset keeps
// its fingerprint) and a digest of its content (a file's size, a packed record's CRC-32, a hash of
// pixels held in memory, the parameters of generated data). 0: the content is not known.
struct SampleIdentity {
  std::string name;
  uint64_t content = 0;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_classes() const = 0;
  // Cheap: no file I/O. Used by label noise and statistics.
  virtual int64_t label(int64_t index) const = 0;
  // Must be safe to call from several threads at once.
  virtual RawSample load(int64_t index) const = 0;
  // Human-readable origin of a sample ("path/to/file.jpg", "cifar batch 3 row 17").
  virtual std::string source(int64_t index) const = 0;
  // Cheap (no decoding; at most a stat) and safe to call from several threads at once.
  virtual SampleIdentity identity(int64_t index) const { return {source(index), 0}; }
};

// Throws dp::Error naming the dataset when index is out of range.
void check_index(const Dataset& dataset, int64_t index, const char* dataset_name);

}  // namespace dp::data
