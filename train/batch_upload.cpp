#include "train/batch_upload.h"

#include <cstring>

#include "kernels/ops.h"

#ifdef DP_WITH_CUDA
#include "engine/cuda/allocator.h"
#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/cuda/copy.h"
#include "engine/cuda/pinned_pool.h"
#endif

namespace dp::train {

data::HostAllocator batch_memory_for(Device device) {
#ifdef DP_WITH_CUDA
  if (device.is_cuda())
    return {[](size_t count) { return static_cast<float*>(cuda::pinned_allocate(count * sizeof(float))); },
            [](float* p, size_t count) { cuda::pinned_release(p, count * sizeof(float)); }};
#else
  (void)device;
#endif
  return {};
}

BatchTensors to_device(const data::Batch& batch, Device device, MemoryFormat format) {
  // One copy from the loader's buffer straight into each tensor on its device, then (channels-
  // last runs) one transpose there; every op downstream keeps that format.
  BatchTensors t;
  t.images = Tensor::empty({batch.n, batch.c, batch.h, batch.w}, DType::Float32, device);
  copy_bytes(t.images.raw_data(), device, batch.data(), Device::cpu(), t.images.nbytes());
  t.images = kernels::convert(t.images, DType::Float32, format);
  t.labels = Tensor::from_vector(batch.labels, {batch.n}, device);
  t.indices = Tensor::from_vector(batch.indices, {batch.n}, device);
  return t;
}

#ifdef DP_WITH_CUDA

struct BatchUploader::CopyStream {
  cudaStream_t stream = nullptr;
  explicit CopyStream(int device) {
    cuda::DeviceGuard guard(device);
    DP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  }
  ~CopyStream() { cudaStreamDestroy(stream); }
};

struct BatchUploader::Slot {
  data::Batch batch;             // the host side, alive until `copied` has completed
  void* pinned_ids = nullptr;    // labels then indices, page-locked (the loader's are not)
  size_t pinned_bytes = 0;
  Tensor images, ids;            // device staging: float32 [capacity], int64 [2·capacity]
  cuda::Event copied{false};     // copy stream: the slot's host-to-device copies are done
  cuda::Event consumed{false};   // compute stream: the slot has been copied out
  bool used = false;
  ~Slot() {
    if (used) copied.synchronize();
    if (pinned_ids != nullptr) cuda::pinned_release(pinned_ids, pinned_bytes);
  }
};

BatchUploader::BatchUploader(Device device, MemoryFormat format) : device_(device), format_(format) {
  if (!device.is_cuda()) return;
  cuda::DeviceGuard guard(device.index);  // the events belong to the device
  stream_ = std::make_unique<CopyStream>(device.index);
  for (auto& s : slots_) s = std::make_unique<Slot>();
}

BatchUploader::~BatchUploader() {
  for (auto& s : slots_) s.reset();  // each waits for its copy before its buffers go
}

BatchTensors BatchUploader::upload(data::Batch batch) {
  if (!device_.is_cuda()) return to_device(batch, device_, format_);
  cuda::DeviceGuard guard(device_.index);
  cudaStream_t compute = cuda::context(device_).stream(), copy = stream_->stream;
  Slot& s = *slots_[next_];
  next_ = (next_ + 1) % slots_.size();
  if (s.used) s.copied.synchronize();  // the DMA no longer reads the slot's previous host batch
  s.batch = std::move(batch);
  const data::Batch& b = s.batch;
  const int64_t pixels = b.n * b.c * b.h * b.w;
  const size_t id_bytes = static_cast<size_t>(2 * b.n) * sizeof(int64_t);

  // Staging that fits. Fresh device blocks may still be read by queued compute work (the
  // allocator orders reuse on the compute stream only), so the copy stream waits for that.
  if (!s.images.defined() || s.images.numel() < pixels || s.ids.numel() < 2 * b.n) {
    s.images = Tensor::empty({std::max<int64_t>(pixels, 1)}, DType::Float32, device_);
    s.ids = Tensor::empty({std::max<int64_t>(2 * b.n, 1)}, DType::Int64, device_);
    cuda::Event fresh(false);
    fresh.record(compute);
    DP_CUDA_CHECK(cudaStreamWaitEvent(copy, fresh.get(), 0));
  } else if (s.used) {
    DP_CUDA_CHECK(cudaStreamWaitEvent(copy, s.consumed.get(), 0));  // the slot was copied out
  }
  if (s.pinned_bytes < id_bytes) {
    if (s.pinned_ids != nullptr) cuda::pinned_release(s.pinned_ids, s.pinned_bytes);
    s.pinned_ids = cuda::pinned_allocate(id_bytes);
    s.pinned_bytes = id_bytes;
  }
  auto* ids = static_cast<int64_t*>(s.pinned_ids);
  std::memcpy(ids, b.labels.data(), static_cast<size_t>(b.n) * sizeof(int64_t));
  std::memcpy(ids + b.n, b.indices.data(), static_cast<size_t>(b.n) * sizeof(int64_t));
  cuda::copy_bytes_async(s.images.raw_data(), device_, b.data(), Device::cpu(),
                         static_cast<size_t>(pixels) * sizeof(float), copy);
  cuda::copy_bytes_async(s.ids.raw_data(), device_, ids, Device::cpu(), id_bytes, copy);
  s.copied.record(copy);
  s.used = true;

  // Out of the slot, on the compute stream once the copies are done.
  DP_CUDA_CHECK(cudaStreamWaitEvent(compute, s.copied.get(), 0));
  BatchTensors t;
  const Tensor staged = s.images.narrow0(0, pixels).view({b.n, b.c, b.h, b.w});
  if (format_ == MemoryFormat::ChannelsLast && !formats_coincide(staged.shape())) {
    t.images = kernels::convert(staged, DType::Float32, format_);  // the transpose is the copy out
  } else {
    t.images = Tensor::empty_like(staged);
    cuda::copy_bytes_async(t.images.raw_data(), device_, staged.raw_data(), device_, staged.nbytes(), compute);
  }
  t.labels = Tensor::empty({b.n}, DType::Int64, device_);
  t.indices = Tensor::empty({b.n}, DType::Int64, device_);
  cuda::copy_bytes_async(t.labels.raw_data(), device_, s.ids.raw_data(), device_, t.labels.nbytes(), compute);
  cuda::copy_bytes_async(t.indices.raw_data(), device_, s.ids.narrow0(b.n, b.n).raw_data(), device_,
                         t.indices.nbytes(), compute);
  s.consumed.record(compute);
  return t;
}

#else

struct BatchUploader::CopyStream {};
struct BatchUploader::Slot {};
BatchUploader::BatchUploader(Device device, MemoryFormat format) : device_(device), format_(format) {}
BatchUploader::~BatchUploader() = default;
BatchTensors BatchUploader::upload(data::Batch batch) { return to_device(batch, device_, format_); }

#endif

}  // namespace dp::train
