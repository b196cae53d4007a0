#include "train/run/batch_upload.h"

#include "kernels/ops.h"

#ifdef DP_WITH_CUDA
#include "engine/cuda/allocator.h"
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

namespace {

// The batch's tensors on `device`, filled by `copy(dst, src, bytes)`; then (channels-last runs)
// one transpose there, after which every op keeps that format.
template <class Copy>
BatchTensors upload_with(const data::Batch& batch, Device device, MemoryFormat format, Copy&& copy) {
  BatchTensors t;
  t.images = Tensor::empty({batch.n, batch.c, batch.h, batch.w}, DType::Float32, device);
  t.labels = Tensor::empty({batch.n}, DType::Int64, device);
  t.indices = Tensor::empty({batch.n}, DType::Int64, device);
  copy(t.images.raw_data(), batch.data(), t.images.nbytes());
  copy(t.labels.raw_data(), batch.labels.data(), t.labels.nbytes());
  copy(t.indices.raw_data(), batch.indices.data(), t.indices.nbytes());
  t.images = ops::convert(t.images, DType::Float32, format);
  return t;
}

}  // namespace

BatchTensors to_device(const data::Batch& batch, Device device, MemoryFormat format) {
  // One copy from the loader's buffer straight into each tensor on its device.
  return upload_with(batch, device, format, [&](void* dst, const void* src, size_t bytes) {
    copy_bytes(dst, device, src, Device::cpu(), bytes);
  });
}

#ifdef DP_WITH_CUDA
struct BatchUploader::InFlight {
  data::Batch batch;
  cuda::Event copied{/*timing=*/false};
};
#else
struct BatchUploader::InFlight {};
#endif

BatchUploader::BatchUploader(Device device, MemoryFormat format) : device_(device), format_(format) {}

BatchUploader::~BatchUploader() {
#ifdef DP_WITH_CUDA
  for (auto& f : in_flight_) f->copied.synchronize();  // the DMA must not outlive the buffers
#endif
}

BatchTensors BatchUploader::upload(data::Batch batch) {
#ifdef DP_WITH_CUDA
  if (device_.is_cuda()) {
    cuda::DeviceGuard guard(device_.index);
    cudaStream_t stream = cuda::context(device_).stream();
    auto f = std::make_unique<InFlight>();
    f->batch = std::move(batch);
    BatchTensors t = upload_with(f->batch, device_, format_, [&](void* dst, const void* src, size_t bytes) {
      cuda::copy_bytes_async(dst, device_, src, Device::cpu(), bytes, stream);
    });
    f->copied.record(stream);
    in_flight_.push_back(std::move(f));
    while (in_flight_.size() > kInFlight) {
      in_flight_.front()->copied.synchronize();
      in_flight_.pop_front();
    }
    return t;
  }
#endif
  return to_device(batch, device_, format_);
}

}  // namespace dp::train
