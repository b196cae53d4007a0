// HDF5 files of named tensors plus scalar and string attributes, written atomically.
//
// Tensor names are paths: "model/layer1.0.conv1.weight" is the dataset "layer1.0.conv1.weight"
// in the group "/model" (dotted parameter names stay whole, as h5py users expect). Writing goes
// through io/atomic_file.h (a temporary in the same folder, fsynced and renamed over the target,
// every result checked), so a crash, a full disk or a failing fsync leaves the previous file intact.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "io/atomic_file.h"

namespace dp::io {

struct TensorFile {
  std::vector<std::pair<std::string, Tensor>> tensors;  // CPU tensors, in writing order
  std::map<std::string, int64_t> ints;                  // root attributes
  std::map<std::string, double> floats;
  std::map<std::string, std::string> strings;

  const Tensor* find(const std::string& name) const;
  const Tensor& at(const std::string& name) const;  // throws naming the file's missing tensor
};

// Throws dp::Error naming the file (a full disk: the folder, the space needed and free).
void write_tensor_file_atomic(const std::string& path, const TensorFile& file);
// The first half of that: `file` written, fsynced and closed as `temporary`, for a caller that
// commits several files together (io/atomic_file.h); errors name `path`, the final name.
StagedFile stage_tensor_file(const std::string& path, const std::string& temporary, const TensorFile& file);

TensorFile read_tensor_file(const std::string& path);

// Copies `src` into `dst` after checking name, shape and dtype, with a readable message
// ("source shape [64, 3, 7, 7] vs target shape [64, 3, 3, 3]") on mismatch.
void load_checked(const TensorFile& file, const std::string& name, Tensor& dst,
                  const std::string& file_path);

}  // namespace dp::io
