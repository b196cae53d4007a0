#include "io/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "kernels/ops.h"

namespace dp::io {

namespace {

// The safetensors format's own limit on the JSON header.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

const char* st_dtype(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::BFloat16: return "BF16";
    case DType::Float16: return "F16";
    case DType::Int32: return "I32";
    case DType::Int64: return "I64";
    case DType::UInt8: return "U8";
  }
  return "?";
}

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) { mant <<= 1; --exp; }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  std::vector<Tensor> host;
  for (const auto& [name, t] : tensors) {
    Tensor h = kernels::convert(t.to(Device::cpu()), t.dtype(), MemoryFormat::Contiguous);  // files hold logical (NCHW) order
    header[name] = {{"dtype", st_dtype(h.dtype())}, {"shape", h.shape()},
                    {"data_offsets", {offset, offset + h.nbytes()}}};
    offset += h.nbytes();
    host.push_back(h);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data to 8 bytes
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    DP_CHECK(out.good(), "cannot create " + tmp, "check that the folder exists and is writable");
    uint64_t n = text.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const Tensor& h : host) out.write(static_cast<const char*>(h.raw_data()), static_cast<std::streamsize>(h.nbytes()));
    DP_CHECK(out.good(), "writing " + tmp + " failed", "check free disk space");
  }
  std::filesystem::rename(tmp, path);
}

std::vector<std::pair<std::string, Tensor>> read_safetensors(const std::string& path) {
  std::error_code ec;
  DP_CHECK(std::filesystem::is_regular_file(path, ec), "cannot read " + path + " (not a regular file)", "check the path");
  std::ifstream in(path, std::ios::binary);
  DP_CHECK(in.good(), "cannot read " + path, "check the path and its permissions");
  const uint64_t file_size = std::filesystem::file_size(path);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  // n comes from the file: compared without arithmetic that could wrap (n near 2^64).
  DP_CHECK(in.good() && file_size >= 8 && n <= file_size - 8 && n <= kMaxHeaderBytes,
           fmt::format("{} is not a safetensors file (header length {} for a file of {} bytes)", path, n, file_size),
           "export the weights with safetensors.torch.save_file");
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    DP_THROW(fmt::format("{}: the safetensors header is not valid JSON ({})", path, e.what()),
             "the file is damaged or not a safetensors file");
  }
  DP_CHECK(header.is_object(), fmt::format("{}: the safetensors header is not a JSON object", path),
           "the file is damaged or not a safetensors file");
  struct Entry { std::string name, dtype; Shape shape; uint64_t begin, end; };
  std::vector<Entry> entries;
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      entries.push_back({name, v.at("dtype").get<std::string>(), v.at("shape").get<Shape>(),
                         v.at("data_offsets").at(0).get<uint64_t>(), v.at("data_offsets").at(1).get<uint64_t>()});
    } catch (const nlohmann::json::exception& e) {
      DP_THROW(fmt::format("{}: the header entry of tensor '{}' is malformed ({})", path, name, e.what()),
               "each tensor needs {\"dtype\": string, \"shape\": [integers], \"data_offsets\": [begin, end]}");
    }
    int64_t count = 1;
    for (int64_t d : entries.back().shape)
      DP_CHECK(d >= 0 && !__builtin_mul_overflow(count, d, &count) && count <= (int64_t{1} << 40),
               fmt::format("{}: tensor '{}' has an impossible shape {}", path, name, shape_str(entries.back().shape)),
               "the file is damaged");
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  const uint64_t base = 8 + n;
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Entry& e : entries) {
    DP_CHECK(e.end >= e.begin && e.end <= file_size - base,
             fmt::format("{}: tensor '{}' lies outside the file", path, e.name), "the file is truncated");
    std::vector<char> raw(e.end - e.begin);
    in.seekg(static_cast<std::streamoff>(base + e.begin));
    in.read(raw.data(), static_cast<std::streamsize>(raw.size()));
    int64_t count = shape_numel(e.shape);
    auto expect = [&](size_t elem) {
      DP_CHECK(raw.size() == static_cast<size_t>(count) * elem,
               fmt::format("{}: tensor '{}' has {} bytes for shape {}", path, e.name, raw.size(), shape_str(e.shape)),
               "the file is damaged");
    };
    Tensor t;
    if (e.dtype == "F32" || e.dtype == "F64" || e.dtype == "I64" || e.dtype == "I32" || e.dtype == "U8") {
      DType dt = e.dtype == "F32" ? DType::Float32 : e.dtype == "F64" ? DType::Float64
               : e.dtype == "I64" ? DType::Int64 : e.dtype == "I32" ? DType::Int32 : DType::UInt8;
      expect(dtype_size(dt));
      t = Tensor::empty(e.shape, dt);
      std::memcpy(t.raw_data(), raw.data(), raw.size());
    } else if (e.dtype == "F16" || e.dtype == "BF16") {
      expect(2);
      t = Tensor::empty(e.shape, DType::Float32);
      float* dst = t.data<float>();
      for (int64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, raw.data() + 2 * i, 2);
        if (e.dtype == "F16") {
          dst[i] = half_to_float(h);
        } else {
          bfloat16 b;
          b.bits = h;
          dst[i] = static_cast<float>(b);
        }
      }
    } else {
      DP_THROW(fmt::format("{}: tensor '{}' has unsupported dtype {}", path, e.name, e.dtype),
               "dp-engine reads F32, F64, F16, BF16, I64, I32 and U8 tensors");
    }
    out.emplace_back(e.name, t);
  }
  return out;
}

}  // namespace dp::io
