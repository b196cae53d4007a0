// Reader for the "DPTENS1" golden containers written by scripts/make_net_goldens.py:
//   magic "DPTENS1\0", uint64 count, then per entry: uint32 name length, name bytes,
//   uint8 dtype (0 float32, 1 float64, 2 int64), uint8 ndim, int64 dims[ndim], raw data,
//   all little-endian. No PyTorch or HDF5 needed to run the tests.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/tensor.h"

namespace dp::testing {

inline std::map<std::string, Tensor> read_golden(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DP_CHECK(in.good(), "cannot open golden file " + path,
           "regenerate it with /usr/bin/python3 scripts/make_net_goldens.py");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  auto take = [&](void* dst, size_t n) {
    DP_CHECK(pos + n <= bytes.size(), "golden file " + path + " is truncated", "regenerate it");
    std::memcpy(dst, bytes.data() + pos, n);
    pos += n;
  };
  char magic[8];
  take(magic, 8);
  DP_CHECK(std::memcmp(magic, "DPTENS1\0", 8) == 0, path + " is not a DPTENS1 file", "regenerate it");
  uint64_t count = 0;
  take(&count, 8);
  std::map<std::string, Tensor> out;
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t len = 0;
    take(&len, 4);
    std::string name(len, '\0');
    take(name.data(), len);
    uint8_t code = 0, ndim = 0;
    take(&code, 1);
    take(&ndim, 1);
    Shape shape(ndim);
    for (auto& d : shape) take(&d, 8);
    DType dt = code == 0 ? DType::Float32 : code == 1 ? DType::Float64 : DType::Int64;
    DP_CHECK(code <= 2, "unknown dtype code in " + path, "regenerate it");
    Tensor t = Tensor::empty(shape, dt);
    take(t.raw_data(), t.nbytes());
    out.emplace(name, t);
  }
  return out;
}

}  // namespace dp::testing
