// Memory allocators. The CPU allocator aligns to 64 bytes (AVX-512 lines); a device backend
// registers its own allocator (the CUDA backend registers its caching allocator).
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/device.h"

namespace dp {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
};

constexpr size_t kCpuAlignment = 64;

Allocator& cpu_allocator();
// Tensor memory blocks the CPU allocator has handed out so far (all threads): lets tests check
// that a code path allocates nothing.
uint64_t cpu_allocation_count();

// The allocator for a device; throws when no backend for it was registered (CPU-only build).
Allocator& allocator_for(Device device);

// Called once by a device backend at start-up.
void register_device_allocator(DeviceKind kind, Allocator* allocator);

}  // namespace dp
