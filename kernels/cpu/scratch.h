// Per-thread scratch buffers for the CPU kernels (grow, never shrink): a convolution's im2col
// columns or Winograd tiles are reused by every later call on the same pool thread instead of
// being allocated (and page-faulted) per call.
#pragma once
#include <cstdint>
#include <vector>

namespace dp::kernels::cpu {

// Slots 0..2 are independent buffers; a kernel must not call another kernel that uses the
// same slot while it holds a pointer.
template <class T>
T* scratch(int slot, int64_t count) {
  thread_local std::vector<T> buffers[3];
  auto& buf = buffers[slot];
  if (static_cast<int64_t>(buf.size()) < count) buf.resize(static_cast<size_t>(count));
  return buf.data();
}

}  // namespace dp::kernels::cpu
