// NumPy .npy files (format 1.0, little-endian, C order), so Python users and test scripts can
// read tensors with numpy.load and no other dependency.
#pragma once
#include <string>

#include "engine/tensor.h"

namespace dp::io {

void write_npy(const std::string& path, const Tensor& tensor);

}  // namespace dp::io
