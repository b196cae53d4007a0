#include "engine/tensor.h"

#include <fmt/format.h>

#include <cstring>

#include "engine/allocator.h"
#include "engine/autograd.h"
#include "engine/primitives.h"

#ifdef DP_WITH_CUDA
#include "engine/cuda/copy.h"
#endif

namespace dp {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    DP_CHECK(d >= 0, "negative dimension in shape " + shape_str(s), "check the layer sizes");
    n *= d;
  }
  return n;
}

const char* memory_format_name(MemoryFormat f) {
  return f == MemoryFormat::ChannelsLast ? "channels_last" : "contiguous";
}

bool formats_coincide(const Shape& s) { return s.size() != 4 || s[1] == 1 || s[2] * s[3] == 1; }

StorageImpl::StorageImpl(size_t nbytes_, Device device_) : nbytes(nbytes_), device(device_) {
  allocator = &allocator_for(device);
  data = allocator->allocate(nbytes);
}

StorageImpl::~StorageImpl() {
  if (allocator != nullptr && data != nullptr) allocator->deallocate(data, nbytes);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
#ifdef DP_WITH_CUDA
  cuda::copy_bytes(dst, dst_device, src, src_device, nbytes);
#else
  DP_THROW("copy to or from " + (dst_device.is_cpu() ? src_device : dst_device).str() +
               " in a build without CUDA",
           "rebuild with -Dcuda=enabled, or keep every tensor on the CPU");
#endif
}

// ---- construction ----

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, MemoryFormat format) {
  DP_CHECK(format == MemoryFormat::Contiguous || shape.size() == 4,
           "channels_last needs a 4-D [N, C, H, W] shape, got " + shape_str(shape),
           "use MemoryFormat::Contiguous for tensors that are not batches of images");
  Tensor t;
  t.impl_ = std::make_shared<TensorImpl>();
  t.impl_->shape = shape;
  t.impl_->dtype = dtype;
  t.impl_->format = formats_coincide(shape) ? MemoryFormat::Contiguous : format;
  t.impl_->storage =
      std::make_shared<StorageImpl>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  return t;
}

Tensor Tensor::empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device(), t.memory_format()); }
Tensor Tensor::empty_like(const Tensor& t, DType dtype) {
  return empty(t.shape(), dtype, t.device(), t.memory_format());
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  engine_primitives("fill").fill(t, value);
  return t;
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  DP_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
           fmt::format("from_vector: {} values for shape {}", values.size(), shape_str(shape)),
           "the number of values must equal the product of the shape");
  Tensor t = empty(shape, dtype_of<T>::value, device);
  copy_bytes(t.raw_data(), device, values.data(), Device::cpu(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<int32_t>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<uint8_t>&, const Shape&, Device);

// ---- metadata ----

static const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  DP_CHECK(impl != nullptr, "use of an undefined tensor",
           "this tensor was never assigned; check that the op producing it ran");
  return *impl;
}

const Shape& Tensor::shape() const { return checked(impl_).shape; }
int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const { return checked(impl_).dtype; }
Device Tensor::device() const { return checked(impl_).storage->device; }
MemoryFormat Tensor::memory_format() const { return checked(impl_).format; }

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  int64_t k = d < 0 ? d + n : d;
  DP_CHECK(k >= 0 && k < n, fmt::format("dimension {} out of range for {}", d, str()),
           "dimensions count from 0, or from -1 at the end");
  return shape()[static_cast<size_t>(k)];
}

std::string Tensor::str() const {
  if (!defined()) return "undefined tensor";
  return fmt::format("{}{} on {}{}", dtype_name(dtype()), shape_str(shape()), device().str(),
                     is_channels_last() ? ", channels_last" : "");
}

void Tensor::check_type(DType want) const {
  DP_CHECK(dtype() == want,
           fmt::format("tensor is {}, accessed as {}", str(), dtype_name(want)),
           "convert with .to(dtype) first");
}

void* Tensor::raw_data() {
  const TensorImpl& i = checked(impl_);
  return static_cast<char*>(i.storage->data) + i.offset * static_cast<int64_t>(dtype_size(i.dtype));
}
const void* Tensor::raw_data() const { return const_cast<Tensor*>(this)->raw_data(); }

// ---- copies and views ----

Tensor Tensor::clone() const {
  Tensor t = empty_like(*this);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  Tensor t = empty(shape(), dtype(), target, memory_format());
  copy_bytes(t.raw_data(), target, raw_data(), device(), nbytes());
  return t;
}

Tensor Tensor::to(DType target) const {
  if (dtype() == target) return *this;
  return engine_primitives("cast").cast(*this, target);
}

Tensor Tensor::view(const Shape& new_shape) const {
  Shape s = new_shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      DP_CHECK(infer < 0, "view(): only one dimension may be -1", "give the other sizes explicitly");
      infer = static_cast<int64_t>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    DP_CHECK(known > 0 && numel() % known == 0,
             fmt::format("view(): cannot infer a size for {} from {}", shape_str(new_shape), str()),
             "the known sizes must divide the number of elements");
    s[static_cast<size_t>(infer)] = numel() / known;
  }
  DP_CHECK(shape_numel(s) == numel(),
           fmt::format("view(): shape {} does not match {}", shape_str(new_shape), str()),
           "the number of elements must stay the same");
  DP_CHECK(!is_channels_last(), fmt::format("view(): {} is stored channels-last", str()),
           "use kernels::reshape (converts to contiguous first), or kernels::to_memory_format");
  Tensor t = alias();
  t.impl_->shape = s;
  return t;
}

Tensor Tensor::alias() const {
  const TensorImpl& i = checked(impl_);
  Tensor t;
  t.impl_ = std::make_shared<TensorImpl>();
  t.impl_->storage = i.storage;
  t.impl_->offset = i.offset;
  t.impl_->dtype = i.dtype;
  t.impl_->shape = i.shape;
  t.impl_->format = i.format;
  return t;
}

Tensor Tensor::narrow0(int64_t start, int64_t length) const {
  DP_CHECK(dim() >= 1 && start >= 0 && length >= 0 && start + length <= shape()[0],
           fmt::format("narrow0({}, {}) out of range for {}", start, length, str()),
           "rows must lie inside the first dimension");
  // The batch dimension is outermost in both memory formats, so rows stay one block.
  Tensor t = alias();
  t.impl_->shape[0] = length;
  if (formats_coincide(t.impl_->shape)) t.impl_->format = MemoryFormat::Contiguous;
  t.impl_->offset += start * (shape()[0] ? numel() / shape()[0] : 0);
  return t;
}

Tensor Tensor::view_at(int64_t offset, const Shape& shape, MemoryFormat format) const {
  const int64_t n = shape_numel(shape);
  DP_CHECK(offset >= 0 && n >= 0 && offset + n <= numel(),
           fmt::format("view_at({}, {}) does not fit inside {}", offset, shape_str(shape), str()),
           "the view must lie inside the tensor's elements");
  DP_CHECK(format == MemoryFormat::Contiguous || shape.size() == 4,
           "view_at: channels_last needs a 4-D shape, got " + shape_str(shape),
           "use MemoryFormat::Contiguous for tensors that are not batches of images");
  Tensor t = alias();
  t.impl_->shape = shape;
  t.impl_->format = formats_coincide(shape) ? MemoryFormat::Contiguous : format;
  t.impl_->offset += offset;
  return t;
}

void Tensor::set_data(const Tensor& src) {
  const TensorImpl& s = checked(src.impl_);
  checked(impl_);
  DP_CHECK(s.shape == impl_->shape && s.dtype == impl_->dtype && src.device() == device() &&
               s.format == impl_->format,
           fmt::format("set_data: {} cannot take the memory of {}", str(), src.str()),
           "the new memory must have the tensor's shape, dtype, device and memory format");
  impl_->storage = s.storage;
  impl_->offset = s.offset;
}

Tensor Tensor::detach() const { return alias(); }

void Tensor::copy_from(const Tensor& src) {
  DP_CHECK(src.shape() == shape() && src.dtype() == dtype() && src.memory_format() == memory_format(),
           fmt::format("copy_from: source {} does not match destination {}", src.str(), str()),
           "convert, reshape or kernels::to_memory_format the source first");
  copy_bytes(raw_data(), device(), src.raw_data(), src.device(), nbytes());
  bump_version();
}

bool Tensor::shares_storage(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

// A host tensor of `dtype` in logical order.
static Tensor host_logical(const Tensor& t, DType dtype) {
  return engine_primitives("convert").convert(t.to(Device::cpu()), dtype, MemoryFormat::Contiguous);
}

std::vector<double> Tensor::to_double_vector() const {
  Tensor host = host_logical(*this, DType::Float64);
  const double* p = host.data<double>();
  return std::vector<double>(p, p + host.numel());
}

std::vector<float> Tensor::to_float_vector() const {
  Tensor host = host_logical(*this, DType::Float32);
  const float* p = host.data<float>();
  return std::vector<float>(p, p + host.numel());
}

double Tensor::item() const {
  DP_CHECK(numel() == 1, "item() on " + str(), "item() needs exactly one element");
  return to_double_vector()[0];
}

// ---- autograd ----

bool Tensor::requires_grad() const { return checked(impl_).requires_grad; }

Tensor& Tensor::set_requires_grad(bool value) {
  DP_CHECK(is_leaf() || value, "set_requires_grad(false) on a non-leaf tensor",
           "use detach() to cut a tensor out of the graph");
  DP_CHECK(!value || is_floating(dtype()), "only floating-point tensors can require grad, got " + str(),
           "convert to float32 first");
  impl_->requires_grad = value;
  return *this;
}

bool Tensor::is_leaf() const { return checked(impl_).grad_fn == nullptr; }
const Tensor& Tensor::grad() const { return checked(impl_).grad; }
Tensor& Tensor::mutable_grad() {
  checked(impl_);
  return impl_->grad;
}
bool Tensor::grad_is_bound() const {
  const TensorImpl& i = checked(impl_);
  // Bound while the grad still views the slot's storage: assigning to mutable_grad() unbinds.
  return i.bound_grad_storage != nullptr && i.grad.defined() &&
         i.grad.impl_->storage.get() == i.bound_grad_storage;
}
void Tensor::bind_grad(const Tensor& slot) {
  checked(impl_);
  DP_CHECK(is_leaf(), "bind_grad on a non-leaf tensor " + str(), "only leaves (parameters) keep gradients");
  DP_CHECK(slot.defined() && slot.shape() == shape() && slot.dtype() == dtype() && slot.device() == device() &&
               slot.memory_format() == memory_format(),
           fmt::format("bind_grad: slot {} does not match {}", slot.defined() ? slot.str() : "undefined", str()),
           "the gradient slot must have the tensor's shape, dtype, device and memory format");
  impl_->grad = slot;
  impl_->bound_grad_storage = slot.impl_->storage.get();
}
void Tensor::set_grad(const Tensor& g) {
  if (grad_is_bound() && g.defined()) {
    impl_->grad.copy_from(g);
    return;
  }
  mutable_grad() = g;
}
void Tensor::zero_grad() {
  if (grad_is_bound()) {
    engine_primitives("fill").fill(impl_->grad, 0.0);
    return;
  }
  mutable_grad() = Tensor();
}
const std::shared_ptr<Node>& Tensor::grad_fn() const { return checked(impl_).grad_fn; }
void Tensor::set_grad_fn(std::shared_ptr<Node> fn) {
  checked(impl_);
  impl_->grad_fn = std::move(fn);
  impl_->requires_grad = impl_->grad_fn != nullptr || impl_->requires_grad;
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  run_backward(*this, gradient, retain_graph);
}

uint64_t Tensor::version() const { return checked(impl_).storage->version; }
void Tensor::bump_version() { ++impl_->storage->version; }

void Tensor::check_inplace_allowed(const char* op) const {
  DP_CHECK(!(grad_enabled() && requires_grad() && is_leaf()),
           fmt::format("{} modifies a leaf tensor that requires grad ({}) in place", op, str()),
           "wrap parameter updates in a NoGradGuard, as optimisers do");
}

}  // namespace dp
