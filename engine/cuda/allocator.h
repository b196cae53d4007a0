// The caching device allocator. cudaMalloc/cudaFree synchronise the device and cost tens of
// microseconds, so freed blocks are kept in bins and handed out again.
//
// Blocks are rounded up to size classes (four per power of two, at least 512 bytes) and reused
// only for an exact class on the same device AND the same stream: work on one stream runs in
// order, so a block freed by the host while kernels that use it are still queued is safe to
// hand to later work on that stream. A block used on another stream must be synchronised by
// its user before it is freed. When cudaMalloc fails, the cache is emptied and the call retried.
// CUDA graphs get private pools (below).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "engine/allocator.h"

namespace dp::cuda {

struct AllocatorStats {
  size_t allocated_bytes = 0;       // in use by tensors (size classes)
  size_t peak_allocated_bytes = 0;
  size_t reserved_bytes = 0;        // obtained from cudaMalloc (in use + cached)
  size_t peak_reserved_bytes = 0;
  uint64_t allocations = 0;         // allocate() calls with nbytes > 0
  uint64_t cache_hits = 0;          // served from the cache
  uint64_t cuda_mallocs = 0;
  uint64_t cuda_frees = 0;
};

class CachingAllocator final : public Allocator {
 public:
  // dp::Allocator interface: current device, its context stream.
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;

  void* allocate(size_t nbytes, int device, cudaStream_t stream);

  AllocatorStats stats() const;
  void reset_peak_stats();
  // Returns every cached (free) block to the driver; blocks in use are untouched.
  void empty_cache();

  static size_t size_class(size_t nbytes);

  // Private pools, for CUDA graphs: while a PrivatePoolScope is active on a thread, that thread's
  // allocations come from (and its frees of the pool's blocks return to) the pool alone, so a
  // graph's memory is never handed to other work. empty_cache() leaves live pools alone. After
  // release_private_pool() the pool's free blocks, and its blocks freed later, join the shared cache.
  uint64_t create_private_pool();
  void release_private_pool(uint64_t pool);

  struct Impl;
  CachingAllocator();
  ~CachingAllocator() override;

 private:
  Impl* impl_;
};

CachingAllocator& caching_allocator();

class PrivatePoolScope {
 public:
  explicit PrivatePoolScope(uint64_t pool);
  ~PrivatePoolScope();
  PrivatePoolScope(const PrivatePoolScope&) = delete;
  PrivatePoolScope& operator=(const PrivatePoolScope&) = delete;

 private:
  uint64_t previous_;
};

// Registers caching_allocator() as dp's CUDA allocator (idempotent; also done at start-up).
void register_cuda_allocator();

inline AllocatorStats memory_stats() { return caching_allocator().stats(); }
inline void empty_cache() { caching_allocator().empty_cache(); }
inline void reset_peak_memory_stats() { caching_allocator().reset_peak_stats(); }

// Page-locked host memory: what asynchronous host<->device copies need to overlap with compute.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t nbytes);
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& other) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() { return data_; }
  const void* data() const { return data_; }
  template <class T> T* as() { return static_cast<T*>(data_); }
  size_t size() const { return nbytes_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
};

// A CUDA event, with timing enabled unless asked otherwise.
class Event {
 public:
  explicit Event(bool timing = true);
  ~Event();
  Event(Event&& other) noexcept;
  Event& operator=(Event&& other) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record(cudaStream_t stream);
  void synchronize() const;
  bool query() const;  // true when the recorded work has completed
  cudaEvent_t get() const { return event_; }
  // Milliseconds between two recorded timing events (synchronises on `end`).
  static float elapsed_ms(const Event& start, const Event& end);

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace dp::cuda
