#include "engine/cuda/copy.h"

#include <cstring>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/cuda/graph.h"

namespace dp::cuda {

void copy_bytes_async(void* dst, Device dst_device, const void* src, Device src_device,
                      size_t nbytes, cudaStream_t stream) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  DeviceGuard guard(dst_device.is_cuda() ? dst_device.index : src_device.index);
  if (dst_device.is_cuda() && src_device.is_cuda() && dst_device.index != src_device.index) {
    DP_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, nbytes, stream));
  } else {
    // Unified addressing lets the runtime infer the direction.
    DP_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, stream));
  }
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  check_not_capturing("a synchronous copy between devices (Tensor::item, to_vector, .to(), copy_from, from_vector)");
  Context& ctx = context(dst_device.is_cuda() ? dst_device : src_device);
  if (dst_device.is_cuda() && src_device.is_cuda() && dst_device.index != src_device.index) {
    // The source's pending work must finish before the peer copy on the destination's stream.
    context(src_device).synchronize();
  }
  copy_bytes_async(dst, dst_device, src, src_device, nbytes, ctx.stream());
  ctx.synchronize();
}

}  // namespace dp::cuda
