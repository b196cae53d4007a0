// HDF5 files of named tensors plus scalar and string attributes, written atomically.
//
// Tensor names are paths: "model/layer1.0.conv1.weight" is the dataset "layer1.0.conv1.weight"
// in the group "/model" (dotted parameter names stay whole, as h5py users expect). Writing goes
// to a temporary file in the same folder, which is fsynced and renamed over the target, so a
// crash at any point leaves the previous file intact.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dp::io {

struct TensorFile {
  std::vector<std::pair<std::string, Tensor>> tensors;  // CPU tensors, in writing order
  std::map<std::string, int64_t> ints;                  // root attributes
  std::map<std::string, double> floats;
  std::map<std::string, std::string> strings;

  const Tensor* find(const std::string& name) const;
  const Tensor& at(const std::string& name) const;  // throws naming the file's missing tensor
};

void write_tensor_file_atomic(const std::string& path, const TensorFile& file);

// Removes the "<name>.h5.tmp.<pid>" files in `folder` whose writer process no longer exists
// (left by a kill -9 during a write); returns how many. Files of live processes stay.
int remove_stale_temporaries(const std::string& folder);
TensorFile read_tensor_file(const std::string& path);

// Copies `src` into `dst` after checking name, shape and dtype, with a readable message
// ("source shape [64, 3, 7, 7] vs target shape [64, 3, 3, 3]") on mismatch.
void load_checked(const TensorFile& file, const std::string& name, Tensor& dst,
                  const std::string& file_path);

}  // namespace dp::io
