// The safetensors format (8-byte little-endian header length, a JSON header mapping names to
// dtype/shape/data_offsets, then the raw little-endian data), so that PyTorch users can
// `safetensors.torch.load_file()` exported weights and runs can start from torchvision's.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace dp::io {

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Tensors in file order (sorted by data offset); float16/bfloat16 are converted to float32.
std::vector<std::pair<std::string, Tensor>> read_safetensors(const std::string& path);

}  // namespace dp::io
