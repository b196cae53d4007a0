#include "engine/cuda/allocator.h"

#include <fmt/format.h>

#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/cuda/graph.h"
#include "engine/error.h"

namespace dp::cuda {

namespace {
// The private pool the calling thread allocates from (0: the shared cache); set while the thread
// captures a CUDA graph (engine/cuda/graph.cpp).
thread_local uint64_t t_private_pool = 0;
}  // namespace

struct CachingAllocator::Impl {
  struct Block {
    size_t size;  // size class
    int device;
    cudaStream_t stream;
    uint64_t pool;  // 0: shared; else the private pool of a CUDA graph
  };
  using BinKey = std::tuple<int, cudaStream_t, size_t, uint64_t>;  // device, stream, size class, pool

  mutable std::mutex mutex;
  std::unordered_map<void*, Block> in_use;
  std::map<BinKey, std::vector<void*>> free_bins;
  std::set<uint64_t> live_pools;
  uint64_t next_pool = 1;
  AllocatorStats stats;

  // Frees the shared cache's blocks. A live private pool keeps its free blocks: the graph that
  // owns them still writes there when it replays.
  void free_cached_locked(int device) {  // device < 0: all devices
    for (auto it = free_bins.begin(); it != free_bins.end();) {
      int dev = std::get<0>(it->first);
      if ((device >= 0 && dev != device) || std::get<3>(it->first) != 0) {
        ++it;
        continue;
      }
      DeviceGuard guard(dev);
      for (void* p : it->second) {
        cudaFree(p);  // synchronises the device: no queued work can still use p
        stats.reserved_bytes -= std::get<2>(it->first);
        ++stats.cuda_frees;
      }
      it = free_bins.erase(it);
    }
  }
};

CachingAllocator::CachingAllocator() : impl_(new Impl) {}
CachingAllocator::~CachingAllocator() { delete impl_; }

size_t CachingAllocator::size_class(size_t nbytes) {
  constexpr size_t kMin = 512;
  if (nbytes <= 2048) return (nbytes + kMin - 1) / kMin * kMin;
  size_t top = size_t{1} << (63 - __builtin_clzll(nbytes));  // highest power of two <= nbytes
  size_t step = top / 4;
  return (nbytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  int device = 0;
  DP_CUDA_CHECK(cudaGetDevice(&device));
  return allocate(nbytes, device, context(device).stream());
}

void* CachingAllocator::allocate(size_t nbytes, int device, cudaStream_t stream) {
  if (nbytes == 0) return nullptr;
  size_t size = size_class(nbytes);
  const uint64_t pool = t_private_pool;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  AllocatorStats& s = impl_->stats;
  ++s.allocations;
  void* ptr = nullptr;
  auto bin = impl_->free_bins.find({device, stream, size, pool});
  if (bin != impl_->free_bins.end() && !bin->second.empty()) {
    ptr = bin->second.back();
    bin->second.pop_back();
    ++s.cache_hits;
  } else {
    DeviceGuard guard(device);
    // cudaMalloc is not recorded by a capture, and that is what a private pool wants (the
    // memory stays the graph's); the relaxed mode lets the capturing thread call it.
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    if (pool != 0) DP_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    cudaError_t err = cudaMalloc(&ptr, size);
    if (pool != 0) DP_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    if (err == cudaErrorMemoryAllocation && pool == 0) {
      cudaGetLastError();
      impl_->free_cached_locked(device);
      err = cudaMalloc(&ptr, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      DP_THROW(fmt::format("out of GPU memory on cuda:{} allocating {} bytes ({}: {} bytes in use, "
                           "{} reserved)",
                           device, nbytes, cudaGetErrorName(err), s.allocated_bytes, s.reserved_bytes),
               "reduce the batch size, free tensors you no longer need, or check nvidia-smi for "
               "other processes on this GPU");
    }
    ++s.cuda_mallocs;
    s.reserved_bytes += size;
    if (s.reserved_bytes > s.peak_reserved_bytes) s.peak_reserved_bytes = s.reserved_bytes;
  }
  impl_->in_use.emplace(ptr, Impl::Block{size, device, stream, pool});
  s.allocated_bytes += size;
  if (s.allocated_bytes > s.peak_allocated_bytes) s.peak_allocated_bytes = s.allocated_bytes;
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, size_t) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  auto it = impl_->in_use.find(ptr);
  DP_CHECK(it != impl_->in_use.end(), "freeing a device pointer the CUDA allocator does not own",
           "this is a bug: memory was freed twice or came from another allocator");
  Impl::Block b = it->second;
  impl_->in_use.erase(it);
  impl_->stats.allocated_bytes -= b.size;
  const uint64_t pool = impl_->live_pools.count(b.pool) ? b.pool : 0;  // a released pool's blocks are shared
  impl_->free_bins[{b.device, b.stream, b.size, pool}].push_back(ptr);
}

uint64_t CachingAllocator::create_private_pool() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const uint64_t pool = impl_->next_pool++;
  impl_->live_pools.insert(pool);
  return pool;
}

void CachingAllocator::release_private_pool(uint64_t pool) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (!impl_->live_pools.erase(pool)) return;
  for (auto it = impl_->free_bins.begin(); it != impl_->free_bins.end();) {
    auto [device, stream, size, p] = it->first;
    if (p != pool) {
      ++it;
      continue;
    }
    auto& shared = impl_->free_bins[{device, stream, size, 0}];
    shared.insert(shared.end(), it->second.begin(), it->second.end());
    it = impl_->free_bins.erase(it);
  }
}

PrivatePoolScope::PrivatePoolScope(uint64_t pool) : previous_(std::exchange(t_private_pool, pool)) {}
PrivatePoolScope::~PrivatePoolScope() { t_private_pool = previous_; }

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->stats;
}

void CachingAllocator::reset_peak_stats() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->stats.peak_allocated_bytes = impl_->stats.allocated_bytes;
  impl_->stats.peak_reserved_bytes = impl_->stats.reserved_bytes;
}

void CachingAllocator::empty_cache() {
  check_not_capturing("empty_cache (cudaFree synchronises the device)");
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->free_cached_locked(-1);
}

CachingAllocator& caching_allocator() {
  // Leaked on purpose: tensors with static lifetime may be freed after other statics are gone.
  static auto* allocator = new CachingAllocator();
  return *allocator;
}

void register_cuda_allocator() { register_device_allocator(DeviceKind::CUDA, &caching_allocator()); }

namespace {
// Start-up registration, so that Tensor::empty(..., Device::cuda()) works before any context
// exists. It touches no CUDA API (a CPU-only machine pays nothing). This object file is always
// linked: tensor.cpp -> copy.cpp -> context.cpp -> register_cuda_allocator().
const bool g_registered = (register_cuda_allocator(), true);
}  // namespace

// ---- pinned host memory ----

PinnedBuffer::PinnedBuffer(size_t nbytes) : nbytes_(nbytes) {
  if (nbytes > 0) DP_CUDA_CHECK(cudaHostAlloc(&data_, nbytes, cudaHostAllocDefault));
}
PinnedBuffer::~PinnedBuffer() {
  if (data_) cudaFreeHost(data_);
}
PinnedBuffer::PinnedBuffer(PinnedBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), nbytes_(std::exchange(o.nbytes_, 0)) {}
PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (data_) cudaFreeHost(data_);
    data_ = std::exchange(o.data_, nullptr);
    nbytes_ = std::exchange(o.nbytes_, 0);
  }
  return *this;
}

// ---- events ----

Event::Event(bool timing) {
  DP_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}
Event::~Event() {
  if (event_) cudaEventDestroy(event_);
}
Event::Event(Event&& o) noexcept : event_(std::exchange(o.event_, nullptr)) {}
Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (event_) cudaEventDestroy(event_);
    event_ = std::exchange(o.event_, nullptr);
  }
  return *this;
}
void Event::record(cudaStream_t stream) { DP_CUDA_CHECK(cudaEventRecord(event_, stream)); }
void Event::synchronize() const {
  check_not_capturing("an event wait (Event::synchronize)");
  DP_CUDA_CHECK(cudaEventSynchronize(event_));
}
bool Event::query() const {
  cudaError_t err = cudaEventQuery(event_);
  if (err == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  DP_CUDA_CHECK(err);
  return true;
}
float Event::elapsed_ms(const Event& start, const Event& end) {
  end.synchronize();
  float ms = 0.f;
  DP_CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, end.event_));
  return ms;
}

}  // namespace dp::cuda
