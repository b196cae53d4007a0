// Host<->device and device<->device copies.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "engine/device.h"

namespace dp::cuda {

// Synchronous from the caller's view: queued on the CUDA side's context stream (so it orders
// after the ops already queued there), then waits for that stream. Used by Tensor::to/copy_from.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

// Queued on `stream`, returns at once. Overlaps with compute only when the host side is pinned
// (PinnedBuffer); the caller keeps both buffers alive until the stream reaches the copy.
void copy_bytes_async(void* dst, Device dst_device, const void* src, Device src_device,
                      size_t nbytes, cudaStream_t stream);

}  // namespace dp::cuda
