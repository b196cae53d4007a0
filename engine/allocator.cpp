#include "engine/allocator.h"

#include <cstdlib>
#include <new>

#include "engine/error.h"

namespace dp {

namespace {

class AlignedCpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    void* p = std::aligned_alloc(kCpuAlignment, rounded);
    DP_CHECK(p != nullptr, "out of host memory allocating " + std::to_string(nbytes) + " bytes",
             "reduce the batch size or the number of loader workers");
    return p;
  }
  void deallocate(void* ptr, size_t) override { std::free(ptr); }
};

Allocator* g_cuda_allocator = nullptr;

}  // namespace

Allocator& cpu_allocator() {
  static AlignedCpuAllocator alloc;
  return alloc;
}

void register_device_allocator(DeviceKind kind, Allocator* allocator) {
  if (kind == DeviceKind::CUDA) g_cuda_allocator = allocator;
}

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) return cpu_allocator();
  DP_CHECK(g_cuda_allocator != nullptr, "no CUDA allocator: this build has no usable CUDA backend",
           "rebuild with -Dcuda=enabled on a machine with the CUDA toolkit, or use device = \"cpu\"");
  return *g_cuda_allocator;
}

}  // namespace dp
