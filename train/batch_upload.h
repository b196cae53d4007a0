// Getting loader batches onto the run's device without stalling it.
#pragma once
#include <array>
#include <memory>

#include "data/loader.h"
#include "engine/tensor.h"

namespace dp::train {

struct BatchTensors {
  Tensor images;   // float32 [n, c, h, w] on the device, in the requested memory format
  Tensor labels;   // int64 [n]
  Tensor indices;  // int64 [n]
};

// A synchronous upload (the host waits for the copies): for evaluation and tools.
BatchTensors to_device(const data::Batch& batch, Device device,
                       MemoryFormat format = MemoryFormat::Contiguous);

// Where the loader should put batches for `device`: page-locked memory (a cached pool) for a
// CUDA device, so the host-to-device copy runs at full DMA speed; plain heap memory otherwise.
data::HostAllocator batch_memory_for(Device device);

// The training loop's upload. On CUDA the host-to-device copies run on their own stream into
// one of two device staging slots, overlapping the step the GPU is computing; the compute
// stream waits for them (an event), copies the batch out of the slot into the tensors it hands
// back and marks the slot free again (another event). Nothing waits on the host except for the
// copy that last used the slot, which also keeps the host at most two batches ahead. The page-
// locked host buffers of a batch stay alive until its copy is done. On the CPU it is to_device().
class BatchUploader {
 public:
  BatchUploader(Device device, MemoryFormat format);
  ~BatchUploader();
  BatchUploader(const BatchUploader&) = delete;
  BatchUploader& operator=(const BatchUploader&) = delete;
  BatchTensors upload(data::Batch batch);

 private:
  struct Slot;
  struct CopyStream;
  Device device_;
  MemoryFormat format_;
  std::unique_ptr<CopyStream> stream_;
  std::array<std::unique_ptr<Slot>, 2> slots_;
  size_t next_ = 0;
};

}  // namespace dp::train
