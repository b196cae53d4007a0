#include "engine/cuda/pinned_pool.h"

#include <cuda_runtime.h>

#include <map>
#include <mutex>

#include "engine/cuda/check.h"

namespace dp::cuda {

namespace {

constexpr size_t kMaxCachedBytes = size_t{1} << 30;  // a few dozen ImageNet batches at most

struct PinnedPool {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;
  size_t cached_bytes = 0;
};

// Never destroyed: blocks may be returned while the program exits, after CUDA has shut down.
PinnedPool& pool() {
  static PinnedPool* p = new PinnedPool();
  return *p;
}

}  // namespace

void* pinned_allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  {
    std::lock_guard<std::mutex> lock(pool().mutex);
    auto it = pool().free_blocks.find(nbytes);
    if (it != pool().free_blocks.end()) {
      void* p = it->second;
      pool().free_blocks.erase(it);
      pool().cached_bytes -= nbytes;
      return p;
    }
  }
  void* p = nullptr;
  DP_CUDA_CHECK(cudaHostAlloc(&p, nbytes, cudaHostAllocDefault));
  return p;
}

void pinned_release(void* ptr, size_t nbytes) {
  if (ptr == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(pool().mutex);
    if (pool().cached_bytes + nbytes <= kMaxCachedBytes) {
      pool().free_blocks.emplace(nbytes, ptr);
      pool().cached_bytes += nbytes;
      return;
    }
  }
  cudaFreeHost(ptr);
}

}  // namespace dp::cuda
