// The CUDA device runtime: error macros (these run without a GPU), contexts, copies, the caching
// allocator, pinned buffers and events.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "engine/cuda/allocator.h"
#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/cuda/copy.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/tensor.h"

namespace dp {
namespace {

#define SKIP_WITHOUT_CUDA()                                                             \
  do {                                                                                  \
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device on this machine: skipped";   \
  } while (0)

template <class F>
std::string error_text(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no exception)";
}

// ---- error macros: no device needed ----

TEST(CudaCheck, RuntimeErrorNamesStatusFileAndHint) {
  std::string text = error_text([] { DP_CUDA_CHECK(cudaErrorMemoryAllocation); });
  EXPECT_NE(text.find("cudaErrorMemoryAllocation"), std::string::npos) << text;
  EXPECT_NE(text.find("test_runtime.cpp"), std::string::npos) << text;
  EXPECT_NE(text.find("hint:"), std::string::npos) << text;
  EXPECT_NE(text.find("batch size"), std::string::npos) << text;
}

TEST(CudaCheck, CublasCudnnAndNcclStatusesThrow) {
  std::string text = error_text([] { DP_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE); });
  EXPECT_NE(text.find("CUBLAS_STATUS_INVALID_VALUE"), std::string::npos) << text;
  text = error_text([] { DP_CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM); });
  EXPECT_NE(text.find("CUDNN_STATUS_BAD_PARAM"), std::string::npos) << text;
#ifdef DP_HAVE_NCCL_HEADER
  text = error_text([] { DP_NCCL_CHECK(ncclInvalidUsage); });
  EXPECT_NE(text.find("ncclInvalidUsage"), std::string::npos) << text;
#endif
  EXPECT_NO_THROW(DP_CUDA_CHECK(cudaSuccess));
  EXPECT_NO_THROW(DP_CUBLAS_CHECK(CUBLAS_STATUS_SUCCESS));
  EXPECT_NO_THROW(DP_CUDNN_CHECK(CUDNN_STATUS_SUCCESS));
}

TEST(CudaRuntime, DeviceCountNeverThrows) {
  int n = -1;
  EXPECT_NO_THROW(n = cuda::device_count());
  EXPECT_GE(n, 0);
  EXPECT_EQ(cuda_available(), n > 0);
}

TEST(CudaRuntime, WithoutDeviceTensorsOnCudaThrowWithHint) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present: this checks the no-device path";
  std::string text = error_text([] { Tensor::empty({4}, DType::Float32, Device::cuda()); });
  EXPECT_NE(text.find("hint:"), std::string::npos) << text;
  EXPECT_THROW(cuda::context(0), Error);
}

TEST(CudaAllocator, SizeClassesRoundUpByAtMostAQuarter) {
  using A = cuda::CachingAllocator;
  EXPECT_EQ(A::size_class(1), 512u);
  EXPECT_EQ(A::size_class(512), 512u);
  EXPECT_EQ(A::size_class(513), 1024u);
  for (size_t n : {size_t{3000}, size_t{1} << 20, (size_t{1} << 20) + 1, size_t{123456789}}) {
    size_t c = A::size_class(n);
    EXPECT_GE(c, n);
    EXPECT_LE(c, n + n / 4 + 512) << n;
    EXPECT_EQ(A::size_class(c), c) << "a class must map to itself: " << n;
  }
}

// ---- with a device ----

TEST(CudaRuntime, ContextIsPerDeviceAndOwnsStreamAndHandles) {
  SKIP_WITHOUT_CUDA();
  cuda::Context& a = cuda::context(0);
  EXPECT_EQ(&a, &cuda::context(Device::cuda(0)));
  EXPECT_NE(a.stream(), nullptr);
  EXPECT_NE(a.cublas(), nullptr);
  EXPECT_NE(a.cudnn(), nullptr);
  EXPECT_EQ(a.cublas(), a.cublas());
  EXPECT_GT(a.sm_count(), 0);
  void* w1 = a.workspace(1000);
  EXPECT_NE(w1, nullptr);
  EXPECT_EQ(a.workspace(10), w1);  // never shrinks
  EXPECT_THROW(cuda::context(cuda::device_count()), Error);
}

TEST(CudaCopy, RoundTripsOfManySizes) {
  SKIP_WITHOUT_CUDA();
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{1000}, int64_t{1} << 20}) {
    std::vector<float> v(static_cast<size_t>(n));
    std::iota(v.begin(), v.end(), -3.5f);
    Tensor host = Tensor::from_vector(v, {n});
    Tensor dev = host.to(Device::cuda());
    EXPECT_EQ(dev.device(), Device::cuda());
    Tensor dev2 = dev.clone();  // device to device
    EXPECT_FALSE(dev2.shares_storage(dev));
    EXPECT_EQ(dev2.to_float_vector(), v) << n;
  }
  std::vector<int64_t> labels = {3, -1, 1ll << 40};
  EXPECT_EQ(Tensor::from_vector(labels, {3}, Device::cuda()).to(Device::cpu()).data<int64_t>()[2], 1ll << 40);
}

TEST(CudaCopy, AsyncCopiesFromPinnedMemoryWithEvents) {
  SKIP_WITHOUT_CUDA();
  const size_t n = 1 << 22;
  cuda::PinnedBuffer src(n * sizeof(float)), dst(n * sizeof(float));
  for (size_t i = 0; i < n; ++i) src.as<float>()[i] = static_cast<float>(i % 1000) * 0.5f;
  Tensor dev = Tensor::empty({static_cast<int64_t>(n)}, DType::Float32, Device::cuda());
  cudaStream_t s = cuda::context(0).stream();
  cuda::Event start, stop;
  start.record(s);
  cuda::copy_bytes_async(dev.raw_data(), Device::cuda(), src.data(), Device::cpu(), n * sizeof(float), s);
  cuda::copy_bytes_async(dst.data(), Device::cpu(), dev.raw_data(), Device::cuda(), n * sizeof(float), s);
  stop.record(s);
  float ms = cuda::Event::elapsed_ms(start, stop);
  EXPECT_GE(ms, 0.f);
  EXPECT_TRUE(stop.query());
  EXPECT_EQ(std::memcmp(src.data(), dst.data(), n * sizeof(float)), 0);
  cuda::PinnedBuffer moved = std::move(src);
  EXPECT_EQ(src.data(), nullptr);
  EXPECT_EQ(moved.size(), n * sizeof(float));
}

TEST(CudaAllocator, FreedBlocksAreReusedAndCounted) {
  SKIP_WITHOUT_CUDA();
  auto& alloc = cuda::caching_allocator();
  Tensor warm = Tensor::empty({12345}, DType::Float32, Device::cuda());
  warm = Tensor();
  cuda::AllocatorStats before = alloc.stats();
  void* first = nullptr;
  {
    Tensor t = Tensor::empty({12345}, DType::Float32, Device::cuda());
    first = t.raw_data();
    cuda::AllocatorStats mid = alloc.stats();
    EXPECT_EQ(mid.cache_hits, before.cache_hits + 1);
    EXPECT_EQ(mid.cuda_mallocs, before.cuda_mallocs);
    EXPECT_EQ(mid.allocated_bytes, before.allocated_bytes + cuda::CachingAllocator::size_class(12345 * 4));
    EXPECT_GE(mid.peak_allocated_bytes, mid.allocated_bytes);
  }
  Tensor again = Tensor::empty({12345}, DType::Float32, Device::cuda());
  EXPECT_EQ(again.raw_data(), first) << "the same block comes back for the same size on the same stream";
  again = Tensor();
  cuda::AllocatorStats after = alloc.stats();
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
  EXPECT_GE(after.reserved_bytes, after.allocated_bytes);

  // A new size class goes to cudaMalloc; empty_cache hands cached blocks back.
  Tensor big = Tensor::empty({3 << 20}, DType::Float32, Device::cuda());
  EXPECT_EQ(alloc.stats().cuda_mallocs, after.cuda_mallocs + 1);
  big = Tensor();
  cuda::empty_cache();
  cuda::AllocatorStats emptied = alloc.stats();
  EXPECT_EQ(emptied.reserved_bytes, emptied.allocated_bytes);
  cuda::reset_peak_memory_stats();
  EXPECT_EQ(alloc.stats().peak_allocated_bytes, alloc.stats().allocated_bytes);
}

TEST(CudaAllocator, OutOfMemoryThrowsWithHint) {
  SKIP_WITHOUT_CUDA();
  std::string text = error_text([] { Tensor::empty({int64_t{1} << 42}, DType::Float32, Device::cuda()); });
  EXPECT_NE(text.find("out of GPU memory"), std::string::npos) << text;
  EXPECT_NE(text.find("hint:"), std::string::npos) << text;
  // The device is still usable afterwards.
  EXPECT_EQ(Tensor::full({3}, 2.0, DType::Float32, Device::cuda()).to_float_vector(),
            (std::vector<float>{2.f, 2.f, 2.f}));
}

}  // namespace
}  // namespace dp

#include "engine/cuda/pinned_pool.h"

namespace dp {

// The batch pool hands a released block out again (no cudaHostAlloc/cudaFreeHost per batch),
// and its memory is page-locked: an async copy from it round-trips.
TEST(CudaPinnedPool, ReusesBlocksAndCopies) {
  if (!dp::cuda_available()) GTEST_SKIP() << "no CUDA device: pinned pool not tested";
  const size_t n = 1000003;  // a size no other test uses
  float* p = static_cast<float*>(cuda::pinned_allocate(n * sizeof(float)));
  ASSERT_NE(p, nullptr);
  cudaPointerAttributes attr{};
  ASSERT_EQ(cudaPointerGetAttributes(&attr, p), cudaSuccess);
  EXPECT_EQ(attr.type, cudaMemoryTypeHost) << "not page-locked";
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<float>(i % 977);
  Tensor d = Tensor::empty({static_cast<int64_t>(n)}, DType::Float32, Device::cuda());
  dp::copy_bytes(d.raw_data(), Device::cuda(), p, Device::cpu(), n * sizeof(float));
  std::vector<float> back = d.to_float_vector();
  EXPECT_EQ(back[n - 1], static_cast<float>((n - 1) % 977));
  cuda::pinned_release(p, n * sizeof(float));
  void* q = cuda::pinned_allocate(n * sizeof(float));
  EXPECT_EQ(q, p) << "the released block was not reused";
  cuda::pinned_release(q, n * sizeof(float));
}

}  // namespace dp
