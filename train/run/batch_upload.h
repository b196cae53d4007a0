// Getting loader batches onto the run's device without stalling it.
#pragma once
#include <deque>
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

// The training loop's upload: on CUDA the copies are queued on the compute stream and return at
// once, so the host prepares step i+1 while the GPU runs step i. The uploader keeps each batch
// (its page-locked buffer) alive until an event says its copy is done; it waits only when more
// than kInFlight batches are queued, which also bounds how far the host runs ahead. On the CPU
// it is to_device().
class BatchUploader {
 public:
  BatchUploader(Device device, MemoryFormat format);
  ~BatchUploader();
  BatchUploader(const BatchUploader&) = delete;
  BatchUploader& operator=(const BatchUploader&) = delete;
  BatchTensors upload(data::Batch batch);

 private:
  static constexpr size_t kInFlight = 2;
  struct InFlight;
  Device device_;
  MemoryFormat format_;
  std::deque<std::unique_ptr<InFlight>> in_flight_;
};

}  // namespace dp::train
