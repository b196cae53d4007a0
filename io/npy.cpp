#include "io/npy.h"

#include <fmt/format.h>

#include <fstream>

#include "engine/error.h"
#include "kernels/ops.h"

namespace dp::io {

void write_npy(const std::string& path, const Tensor& tensor) {
  Tensor t = kernels::convert(tensor.to(Device::cpu()), tensor.dtype(), MemoryFormat::Contiguous);  // files hold logical (NCHW) order
  const char* descr = nullptr;
  switch (t.dtype()) {
    case DType::Float32: descr = "<f4"; break;
    case DType::Float64: descr = "<f8"; break;
    case DType::Int64: descr = "<i8"; break;
    case DType::Int32: descr = "<i4"; break;
    case DType::UInt8: descr = "|u1"; break;
    default: DP_THROW(fmt::format("cannot write {} as .npy", dtype_name(t.dtype())), "convert to float32");
  }
  std::string shape;
  for (int64_t d : t.shape()) shape += std::to_string(d) + ", ";
  if (t.dim() > 1) shape.resize(shape.size() - 1);  // "(2, 3)" but "(5,)"
  if (!shape.empty() && shape.back() == ' ') shape.pop_back();
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, shape);
  // magic (6) + version (2) + header length (2) + header, padded with spaces to 64 bytes, '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  DP_CHECK(out.good(), "cannot create " + path, "check that the folder exists and is writable");
  out.write("\x93NUMPY\x01\x00", 8);
  auto len = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&len), 2);
  out << header;
  out.write(static_cast<const char*>(t.raw_data()), static_cast<std::streamsize>(t.nbytes()));
  DP_CHECK(out.good(), "writing " + path + " failed", "check free disk space");
}

}  // namespace dp::io
