// Tensor: a typed, shaped view of reference-counted storage on one device, plus autograd state.
//
// Tensors are dense: views that stay dense (reshape, narrowing the first dimension) share
// storage; anything else copies. That keeps every kernel simple and is the cheap subset of views
// a CNN engine needs. A 4-D tensor is stored in one of two memory formats, like PyTorch's:
// Contiguous (row-major NCHW) or ChannelsLast (NHWC in memory). The shape is always the logical
// [N, C, H, W]; only the order of the elements in memory differs. ChannelsLast exists because
// cuDNN's tensor-core convolutions run on NHWC natively (bf16 NCHW pays for transposes).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/error.h"

namespace dp {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

class Allocator;

enum class MemoryFormat : uint8_t { Contiguous, ChannelsLast };
const char* memory_format_name(MemoryFormat f);
// True when the two formats put the elements of `shape` in the same order (not 4-D, C == 1 or
// H·W == 1): such tensors are always stored as Contiguous.
bool formats_coincide(const Shape& shape);
struct Node;
struct TensorImpl;

// Reference-counted memory block. The version counter is shared by every view of the block,
// so an in-place write through one view invalidates tensors saved for backward through another.
struct StorageImpl {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  Allocator* allocator = nullptr;  // null: not owned
  uint64_t version = 0;
  StorageImpl(size_t nbytes, Device device);
  ~StorageImpl();
  StorageImpl(const StorageImpl&) = delete;
  StorageImpl& operator=(const StorageImpl&) = delete;
};

class Tensor {
 public:
  Tensor() = default;

  // ---- construction ----
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu(),
                      MemoryFormat format = MemoryFormat::Contiguous);
  // Same shape, device and memory format as t (dtype t's unless given).
  static Tensor empty_like(const Tensor& t);
  static Tensor empty_like(const Tensor& t, DType dtype);
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
                     Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu()) {
    return full(shape, 1.0, dtype, device);
  }
  static Tensor scalar(double value, DType dtype = DType::Float32, Device device = Device::cpu()) {
    return full({}, value, dtype, device);
  }
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                            Device device = Device::cpu());

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  MemoryFormat memory_format() const;
  bool is_channels_last() const { return memory_format() == MemoryFormat::ChannelsLast; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  std::string str() const;  // "float32[2, 3] on cpu", ", channels_last" appended when so

  // ---- data access (no synchronisation: the caller owns ordering on CUDA) ----
  void* raw_data();
  const void* raw_data() const;
  template <class T> T* data() {
    check_type(dtype_of<T>::value);
    return static_cast<T*>(raw_data());
  }
  template <class T> const T* data() const {
    check_type(dtype_of<T>::value);
    return static_cast<const T*>(raw_data());
  }

  // ---- copies and views (all keep the memory format) ----
  Tensor clone() const;                 // deep copy, same device/dtype, no autograd history
  Tensor to(Device device) const;       // copy to another device (no-op when already there)
  Tensor to(DType dtype) const;         // converting copy (no-op when same)
  // Shares storage; -1 infers one dimension; no autograd. Refused on a ChannelsLast tensor
  // (its memory is not in the new shape's order): use kernels::reshape, which converts.
  Tensor view(const Shape& shape) const;
  Tensor narrow0(int64_t start, int64_t length) const;  // rows [start, start+length), shares storage
  // numel(shape) elements starting `offset` elements into this tensor's memory, viewed as
  // `shape` in `format`; must lie inside this tensor. Shares storage, no autograd. (How a flat
  // buffer hands out per-parameter views: train/flat_parameters.h.)
  Tensor view_at(int64_t offset, const Shape& shape, MemoryFormat format = MemoryFormat::Contiguous) const;
  // Makes this tensor, and every handle sharing it, view src's memory (PyTorch's `p.data = src`).
  // Same shape, dtype, device and memory format; requires_grad, grad and grad_fn are kept.
  void set_data(const Tensor& src);
  Tensor detach() const;                // shares storage, drops autograd history
  void copy_from(const Tensor& src);    // same shape and format; any device pair; bumps version
  bool shares_storage(const Tensor& other) const;

  // Host copies for tests and logging, in logical (NCHW) order whatever the memory format.
  std::vector<float> to_float_vector() const;
  std::vector<double> to_double_vector() const;
  double item() const;  // one-element tensor

  // ---- autograd ----
  bool requires_grad() const;
  Tensor& set_requires_grad(bool value);  // only on leaves
  bool is_leaf() const;
  const Tensor& grad() const;
  Tensor& mutable_grad();
  // On a leaf whose gradient is bound (bind_grad), set_grad copies into the bound slot and
  // zero_grad fills it with zeros; otherwise set_grad replaces the gradient and zero_grad drops
  // it (like set_to_none=True).
  void set_grad(const Tensor& g);
  void zero_grad();
  // Binds this leaf's gradient to `slot` (same shape, dtype, device and memory format, e.g. a
  // view of a flat gradient buffer): backward accumulates into it in place instead of
  // allocating, so the gradient always lives there. Assigning to mutable_grad() unbinds it.
  void bind_grad(const Tensor& slot);
  bool grad_is_bound() const;
  const std::shared_ptr<Node>& grad_fn() const;
  void set_grad_fn(std::shared_ptr<Node> fn);
  // Reverse-mode pass from a one-element tensor; gradient defaults to 1.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;

  // ---- in-place bookkeeping ----
  uint64_t version() const;
  void bump_version();
  // Throws when an in-place write would corrupt autograd (leaf that requires grad, grad mode on).
  void check_inplace_allowed(const char* op) const;

  const TensorImpl* impl() const { return impl_.get(); }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  void check_type(DType want) const;
  Tensor alias() const;  // a new TensorImpl on the same storage, offset, shape and format
  std::shared_ptr<TensorImpl> impl_;
  friend struct TensorImpl;
};

struct TensorImpl {
  std::shared_ptr<StorageImpl> storage;
  Shape shape;
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  MemoryFormat format = MemoryFormat::Contiguous;
  bool requires_grad = false;
  Tensor grad;
  const StorageImpl* bound_grad_storage = nullptr;  // grad's storage while bind_grad holds
  std::shared_ptr<Node> grad_fn;
};

// Copies between host and device memory; implemented by the CUDA backend when present.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

}  // namespace dp
