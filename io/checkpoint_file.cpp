#include "io/checkpoint_file.h"

#include <fmt/format.h>
#include <hdf5.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string_view>

#include "engine/error.h"
#include "kernels/ops.h"

namespace dp::io {

namespace {

// Closes an HDF5 identifier when it leaves scope.
struct H5Id {
  hid_t id = -1;
  herr_t (*close)(hid_t) = nullptr;
  H5Id(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~H5Id() {
    if (id >= 0 && close) close(id);
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  operator hid_t() const { return id; }
};

// Our own messages instead of HDF5's printed error stack, while it lives. Declared before the
// H5Ids of a scope, so that a failure's error stack (which holds identifiers until cleared) is
// cleared after they close.
class QuietHdf5Errors {
 public:
  QuietHdf5Errors() : exceptions_(std::uncaught_exceptions()) {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5Errors() {
    if (std::uncaught_exceptions() > exceptions_) H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, func_, data_);
  }
  QuietHdf5Errors(const QuietHdf5Errors&) = delete;
  QuietHdf5Errors& operator=(const QuietHdf5Errors&) = delete;

 private:
  int exceptions_;
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

const char* kDamagedHint =
    "the file was changed or cut short after dp-engine wrote it: use an earlier copy (best.h5 or "
    "a backup), or rerun from the last good checkpoint";

void h5_check(bool ok, const std::string& what, const std::string& path) {
  DP_CHECK(ok, fmt::format("HDF5: {} failed for {}", what, path),
           "check the file is a dp-engine checkpoint, not truncated, and the disk is not full");
}

hid_t h5_type(DType t) {
  switch (t) {
    case DType::Float32: return H5T_NATIVE_FLOAT;
    case DType::Float64: return H5T_NATIVE_DOUBLE;
    case DType::Int32: return H5T_NATIVE_INT32;
    case DType::Int64: return H5T_NATIVE_INT64;
    case DType::UInt8: return H5T_NATIVE_UINT8;
    case DType::BFloat16: return H5T_NATIVE_UINT16;  // raw bits; never written by dp-engine today
    default: break;
  }
  DP_THROW(fmt::format("cannot store {} tensors in HDF5", dtype_name(t)), "convert to float32");
}

DType dtype_from_h5(hid_t type, const std::string& name, const std::string& path) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT && size == 4) return DType::Float32;
  if (cls == H5T_FLOAT && size == 8) return DType::Float64;
  if (cls == H5T_INTEGER && size == 8) return DType::Int64;
  if (cls == H5T_INTEGER && size == 4) return DType::Int32;
  if (cls == H5T_INTEGER && size == 1) return DType::UInt8;
  DP_THROW(fmt::format("{}: dataset /{} has an unsupported HDF5 type", path, name),
           "dp-engine stores float32/float64/int32/int64/uint8 tensors");
}

hid_t ensure_group(hid_t file, const std::string& group_path, const std::string& path) {
  std::string partial;
  size_t pos = 0;
  while (pos < group_path.size()) {
    size_t next = group_path.find('/', pos);
    if (next == std::string::npos) next = group_path.size();
    partial += '/';
    partial.append(group_path, pos, next - pos);
    if (H5Lexists(file, partial.c_str(), H5P_DEFAULT) <= 0) {
      hid_t g = H5Gcreate2(file, partial.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      h5_check(g >= 0, "creating group " + partial, path);
      H5Gclose(g);
    }
    pos = next + 1;
  }
  return H5Gopen2(file, group_path.empty() ? "/" : ("/" + group_path).c_str(), H5P_DEFAULT);
}

void write_attr_string(hid_t obj, const std::string& key, const std::string& value,
                       const std::string& path) {
  H5Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, value.empty() ? 1 : value.size());
  H5Tset_cset(type, H5T_CSET_UTF8);
  H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Id attr(H5Acreate2(obj, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  h5_check(attr >= 0, "creating attribute " + key, path);
  h5_check(H5Awrite(attr, type, value.empty() ? "" : value.data()) >= 0, "writing attribute " + key, path);
}

template <class T>
void write_attr_number(hid_t obj, const std::string& key, T value, hid_t type, const std::string& path) {
  H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Id attr(H5Acreate2(obj, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  h5_check(attr >= 0 && H5Awrite(attr, type, &value) >= 0, "writing attribute " + key, path);
}

// Root attributes kept compact (in the object header, under its checksum) up to this many.
constexpr unsigned kMaxCompactAttributes = 64;
// Chunks of at most this many bytes along the first dimension: Fletcher-32 works per chunk.
constexpr size_t kChunkBytes = size_t{1} << 20;

// Chunked layout with Fletcher-32 for datasets with elements; rank-0 and empty datasets are
// compact (their data sits in the checksummed object header).
hid_t checksummed_layout(const std::vector<hsize_t>& dims, size_t element_bytes) {
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  size_t count = 1;
  for (hsize_t d : dims) count *= static_cast<size_t>(d);
  if (dims.empty() || count == 0) {
    H5Pset_layout(dcpl, H5D_COMPACT);
    return dcpl;
  }
  std::vector<hsize_t> chunk = dims;
  const size_t row_bytes = count / static_cast<size_t>(dims[0]) * element_bytes;
  chunk[0] = std::clamp<hsize_t>(kChunkBytes / std::max<size_t>(row_bytes, 1), 1, dims[0]);
  H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
  H5Pset_fletcher32(dcpl);
  return dcpl;
}

struct ReadContext {
  TensorFile* out;
  std::string path;
  std::exception_ptr error;  // exceptions must not unwind through HDF5's C frames
};

void read_dataset(hid_t root, const char* name, ReadContext* ctx) {
  H5Id ds(H5Dopen2(root, name, H5P_DEFAULT), H5Dclose);
  h5_check(ds >= 0, std::string("opening dataset ") + name, ctx->path);
  H5Id space(H5Dget_space(ds), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  H5Id type(H5Dget_type(ds), H5Tclose);
  DType dtype = dtype_from_h5(type, name, ctx->path);
  // The shape must describe data that is actually in the file: a damaged header could claim
  // 2^62 elements (an overflowing size, then a huge allocation).
  size_t bytes = dtype_size(dtype);
  for (hsize_t d : dims)
    DP_CHECK(!__builtin_mul_overflow(bytes, static_cast<size_t>(d), &bytes),
             fmt::format("{}: dataset /{} claims a size that overflows", ctx->path, name), kDamagedHint);
  H5Id dcpl(H5Dget_create_plist(ds), H5Pclose);
  const int filters = H5Pget_nfilters(dcpl);
  unsigned flags = 0;
  size_t nelem = 0;
  const bool checksummed =
      H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &nelem, nullptr, 0, nullptr, nullptr) >= 0;
  if (filters == (checksummed ? 1 : 0))  // stored uncompressed: the file must hold every byte
    DP_CHECK(H5Dget_storage_size(ds) >= bytes,
             fmt::format("{}: dataset /{} {} needs {} bytes but the file holds {}", ctx->path, name, shape_str(Shape(dims.begin(), dims.end())),
                         bytes, static_cast<unsigned long long>(H5Dget_storage_size(ds))),
             kDamagedHint);
  Shape shape(dims.begin(), dims.end());
  Tensor t = Tensor::empty(shape, dtype);
  if (t.numel() > 0)
    DP_CHECK(H5Dread(ds, h5_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()) >= 0,
             fmt::format("{}: dataset /{} is damaged: {}", ctx->path, name,
                         checksummed ? "its Fletcher-32 checksum does not match its data"
                                     : "HDF5 cannot read its data"),
             kDamagedHint);
  ctx->out->tensors.emplace_back(name, t);
}

herr_t visit_object(hid_t root, const char* name, const H5O_info_t* info, void* data) {
  auto* ctx = static_cast<ReadContext*>(data);
  if (info->type != H5O_TYPE_DATASET) return 0;
  try {
    read_dataset(root, name, ctx);
  } catch (...) {
    ctx->error = std::current_exception();
    return -1;
  }
  return 0;
}

void read_attr(hid_t obj, const char* name, ReadContext* ctx) {
  H5Id attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  H5Id type(H5Aget_type(attr), H5Tclose);
  H5T_class_t cls = H5Tget_class(type);
  if (cls == H5T_STRING) {
    size_t n = H5Tget_size(type);
    std::string s(n, '\0');
    h5_check(H5Aread(attr, type, s.data()) >= 0, std::string("reading attribute ") + name, ctx->path);
    while (!s.empty() && s.back() == '\0') s.pop_back();
    ctx->out->strings[name] = s;
  } else if (cls == H5T_INTEGER) {
    int64_t v = 0;
    h5_check(H5Aread(attr, H5T_NATIVE_INT64, &v) >= 0, std::string("reading attribute ") + name, ctx->path);
    ctx->out->ints[name] = v;
  } else if (cls == H5T_FLOAT) {
    double v = 0;
    h5_check(H5Aread(attr, H5T_NATIVE_DOUBLE, &v) >= 0, std::string("reading attribute ") + name, ctx->path);
    ctx->out->floats[name] = v;
  }
}

herr_t visit_attr(hid_t obj, const char* name, const H5A_info_t*, void* data) {
  auto* ctx = static_cast<ReadContext*>(data);
  try {
    read_attr(obj, name, ctx);
  } catch (...) {
    ctx->error = std::current_exception();
    return -1;
  }
  return 0;
}

// The in-memory file's buffer, taken over from HDF5's core driver when the file closes (through its
// file-image callbacks), so the finished image, superblock checksum included, is not copied.
// (H5Fget_file_image on an open file would copy it, and HDF5 1.10.8 leaves the copy's superblock
// checksum stale for the 1.10 format.) `capacity` follows the driver's allocations.
struct ImageBuffer {
  void* data = nullptr;  // set when the file closes
  size_t capacity = 0;   // of the driver's latest allocation
  ~ImageBuffer() { std::free(data); }
};

void* image_malloc(size_t size, H5FD_file_image_op_t, void* udata) {
  static_cast<ImageBuffer*>(udata)->capacity = size;
  return std::malloc(size);
}
void* image_memcpy(void* dest, const void* src, size_t size, H5FD_file_image_op_t, void*) {
  return std::memcpy(dest, src, size);
}
void* image_realloc(void* ptr, size_t size, H5FD_file_image_op_t, void* udata) {
  static_cast<ImageBuffer*>(udata)->capacity = size;
  return std::realloc(ptr, size);
}
herr_t image_free(void* ptr, H5FD_file_image_op_t op, void* udata) {
  auto* kept = static_cast<ImageBuffer*>(udata);
  if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE && kept->data == nullptr) kept->data = ptr;
  else std::free(ptr);
  return 0;
}
void* image_udata_copy(void* udata) { return udata; }
herr_t image_udata_free(void*) { return 0; }

// The file's length: the end-of-file address its closed superblock records (HDF5 file format
// specification, superblock versions 2 and 3: signature (8 bytes), version, size of offsets, size of
// lengths, flags (1 byte each), then base address, extension address, end-of-file address). Closing
// can give back space at the end, so a length taken before the close may include unused bytes, and
// a reader would not notice a file cut short by those.
size_t image_length(const ImageBuffer& image, const std::string& path) {
  const auto* bytes = static_cast<const uint8_t*>(image.data);
  constexpr size_t kEofOffset = 12 + 2 * sizeof(uint64_t);
  const bool v2_superblock = image.capacity >= kEofOffset + sizeof(uint64_t) &&
                             std::memcmp(bytes, "\211HDF\r\n\032\n", 8) == 0 && (bytes[8] == 2 || bytes[8] == 3) &&
                             bytes[9] == sizeof(uint64_t);
  h5_check(v2_superblock, "reading the superblock of the file built in memory", path);
  uint64_t eof = 0;
  for (size_t i = 0; i < sizeof eof; ++i) eof |= static_cast<uint64_t>(bytes[kEofOffset + i]) << (8 * i);  // little-endian
  h5_check(eof > kEofOffset && eof <= image.capacity, "finding the end of the file built in memory", path);
  return static_cast<size_t>(eof);
}

// The whole file is built in memory by HDF5's core driver and written by io/atomic_file.h: HDF5
// itself never touches the disk, so a full or failing disk is one checked write (not hundreds of
// lines of HDF5 diagnostics and a crash in its exit handler with a half-written file left open).
// The cost is the file's size in memory while it is written.
void build_image(const std::string& path, const TensorFile& file, ImageBuffer& image, size_t& image_size) {
  static std::atomic<uint64_t> images{0};  // distinct in-memory file names: HDF5 refuses a name twice
  size_t data_bytes = 0;
  for (const auto& entry : file.tensors) data_bytes += entry.second.nbytes();
  // Integrity: the 1.10 file format checksums all metadata (superblock, object headers with
  // their compact attributes and links, chunk indices), and every dataset gets HDF5's
  // Fletcher-32 filter, which H5Dread verifies. Readers need HDF5 >= 1.10 (h5py has it).
  H5Id fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  H5Pset_attr_phase_change(fcpl, kMaxCompactAttributes, 0);  // root attributes stay in its checksummed header
  H5Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST);
  // Grown in steps of about the final size: one allocation, rarely two.
  H5FD_file_image_callbacks_t callbacks = {image_malloc,     image_memcpy,     image_realloc, image_free,
                                           image_udata_copy, image_udata_free, &image};
  h5_check(H5Pset_fapl_core(fapl, data_bytes + (size_t{1} << 20), /*backing_store=*/0) >= 0 &&
               H5Pset_file_image_callbacks(fapl, &callbacks) >= 0,
           "setting up the in-memory file", path);
  const std::string image_name = fmt::format("{}#image{}", path, images++);
  H5Id f(H5Fcreate(image_name.c_str(), H5F_ACC_TRUNC, fcpl, fapl), H5Fclose);
  h5_check(f >= 0, "creating the file in memory", path);
  for (const auto& [name, tensor] : file.tensors) {
    Tensor t = kernels::convert(tensor.to(Device::cpu()), tensor.dtype(), MemoryFormat::Contiguous);  // files hold logical (NCHW) order
    size_t slash = name.rfind('/');
    std::string group = slash == std::string::npos ? "" : name.substr(0, slash);
    std::string leaf = slash == std::string::npos ? name : name.substr(slash + 1);
    H5Id g(ensure_group(f, group, path), H5Gclose);
    std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
    H5Id space(dims.empty() ? H5Screate(H5S_SCALAR)
                            : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               H5Sclose);
    H5Id dcpl(checksummed_layout(dims, dtype_size(t.dtype())), H5Pclose);
    H5Id ds(H5Dcreate2(g, leaf.c_str(), h5_type(t.dtype()), space, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose);
    h5_check(ds >= 0, "creating dataset " + name, path);
    if (t.numel() > 0)
      h5_check(H5Dwrite(ds, h5_type(t.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()) >= 0,
               "writing dataset " + name, path);
  }
  {
    H5Id root(H5Gopen2(f, "/", H5P_DEFAULT), H5Gclose);
    for (const auto& [k, v] : file.ints) write_attr_number(root, k, v, H5T_NATIVE_INT64, path);
    for (const auto& [k, v] : file.floats) write_attr_number(root, k, v, H5T_NATIVE_DOUBLE, path);
    for (const auto& [k, v] : file.strings) write_attr_string(root, k, v, path);
  }
  const hid_t id = f.id;
  f.id = -1;
  h5_check(H5Fclose(id) >= 0 && image.data != nullptr, "closing the file in memory", path);
  image_size = image_length(image, path);
}

}  // namespace

const Tensor* TensorFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

const Tensor& TensorFile::at(const std::string& name) const {
  const Tensor* t = find(name);
  DP_CHECK(t != nullptr, fmt::format("the file has no tensor '{}'", name),
           "the checkpoint was written by another model or an older dp-engine");
  return *t;
}

StagedFile stage_tensor_file(const std::string& path, const std::string& temporary, const TensorFile& file) {
  ImageBuffer image;
  size_t size = 0;
  {
    QuietHdf5Errors quiet;
    build_image(path, file, image, size);
  }
  return StagedFile(path, temporary, image.data, size);
}

void write_tensor_file_atomic(const std::string& path, const TensorFile& file) {
  stage_tensor_file(path, temporary_name(path), file).commit();
}

TensorFile read_tensor_file(const std::string& path) {
  DP_CHECK(std::filesystem::exists(path), "no such file: " + path, "check the path");
  QuietHdf5Errors quiet;
  TensorFile out;
  // Strong close: objects HDF5 leaves open while failing on a damaged file go with it.
  H5Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  H5Id f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl), H5Fclose);
  h5_check(f >= 0, "opening", path);
  ReadContext ctx{&out, path, nullptr};
  herr_t listed = H5Ovisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, visit_object, &ctx);
  if (ctx.error) std::rethrow_exception(ctx.error);
  h5_check(listed >= 0, "listing", path);
  H5Id root(H5Gopen2(f, "/", H5P_DEFAULT), H5Gclose);
  hsize_t idx = 0;
  herr_t attrs = H5Aiterate2(root, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, visit_attr, &ctx);
  if (ctx.error) std::rethrow_exception(ctx.error);
  h5_check(attrs >= 0, "reading attributes", path);
  return out;
}

void load_checked(const TensorFile& file, const std::string& name, Tensor& dst,
                  const std::string& file_path) {
  const Tensor* src = file.find(name);
  DP_CHECK(src != nullptr, fmt::format("{} has no tensor '{}'", file_path, name),
           "the checkpoint was written for another model or configuration");
  DP_CHECK(src->shape() == dst.shape(),
           fmt::format("{}: '{}': source shape {} vs target shape {}", file_path, name,
                       shape_str(src->shape()), shape_str(dst.shape())),
           "the checkpoint was written for another model or number of classes");
  DP_CHECK(src->dtype() == dst.dtype(),
           fmt::format("{}: '{}': source dtype {} vs target dtype {}", file_path, name,
                       dtype_name(src->dtype()), dtype_name(dst.dtype())),
           "the checkpoint was written with another precision");
  dst.copy_from(src->to(dst.device()));
}

}  // namespace dp::io
