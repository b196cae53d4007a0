#include "engine/cuda/context.h"

#include <fmt/format.h>

#include <atomic>
#include <memory>
#include <vector>

#include "engine/cuda/allocator.h"
#include "engine/cuda/check.h"
#include "engine/cuda/graph.h"
#include "engine/error.h"

namespace dp::cuda {

namespace {
std::atomic<bool> g_allow_tf32{true};
std::atomic<bool> g_deterministic{false};
std::atomic<bool> g_cudnn_benchmark{false};
}  // namespace

void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32; }
void set_deterministic(bool d) { g_deterministic = d; }
bool deterministic() { return g_deterministic; }
void set_cudnn_benchmark(bool b) { g_cudnn_benchmark = b; }
bool cudnn_benchmark() { return g_cudnn_benchmark; }

int device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // error 35 (no driver) and friends: no device
      return 0;
    }
    return n;
  }();
  return count;
}

DeviceGuard::DeviceGuard(int device) {
  DP_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) DP_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  int now = -1;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
}

Context::Context(int device) : device_(device) {
  DeviceGuard guard(device);
  DP_CUDA_CHECK(cudaGetDeviceProperties(&props_, device));
  // Blocking (not cudaStreamNonBlocking): orders with the legacy default stream, so code that
  // still launches on stream 0 stays correct.
  DP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamDefault));
  register_cuda_allocator();
}

Context::~Context() {
  // Contexts are never destroyed in practice (see context()); this keeps RAII honest.
  if (cudnn_) cudnnDestroy(cudnn_);
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) cudaStreamDestroy(stream_);
}

cublasHandle_t Context::cublas() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!cublas_) {
    DeviceGuard guard(device_);
    DP_CUBLAS_CHECK(cublasCreate(&cublas_));
    DP_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    // A workspace of our own (32 MiB, what cuBLAS recommends for Hopper), set after the stream
    // (cublasSetStream resets it): cuBLAS then never allocates inside a CUDA graph capture.
    constexpr size_t kCublasWorkspace = size_t{32} << 20;
    cublas_workspace_ = caching_allocator().allocate(kCublasWorkspace, device_, stream_);
    DP_CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspace));
  }
  return cublas_;
}

cudnnHandle_t Context::cudnn() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!cudnn_) {
    DeviceGuard guard(device_);
    DP_CUDNN_CHECK(cudnnCreate(&cudnn_));
    DP_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
  }
  return cudnn_;
}

void* Context::workspace(size_t nbytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!current_capture().empty()) workspace_in_graph_ = true;
  if (nbytes <= workspace_bytes_) return workspace_;
  // Stream-ordered reuse makes freeing the old buffer safe: the allocator hands it out again
  // only to later work on the same stream. Unless a CUDA graph recorded it: a graph replays with
  // the addresses it captured, so that buffer is kept for the life of the process.
  if (workspace_ && workspace_in_graph_) retired_workspaces_.push_back(workspace_);
  else if (workspace_) caching_allocator().deallocate(workspace_, workspace_bytes_);
  workspace_in_graph_ = !current_capture().empty();
  workspace_ = nullptr;
  workspace_bytes_ = 0;
  workspace_ = caching_allocator().allocate(nbytes, device_, stream_);
  workspace_bytes_ = nbytes;
  return workspace_;
}

void Context::release_workspace() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (workspace_ && workspace_in_graph_) retired_workspaces_.push_back(workspace_);
  else if (workspace_) caching_allocator().deallocate(workspace_, workspace_bytes_);
  workspace_in_graph_ = false;
  workspace_ = nullptr;
  workspace_bytes_ = 0;
}

void Context::synchronize() {
  check_not_capturing("a stream wait (Context::synchronize)");
  DP_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

Context& context(int device) {
  static std::mutex mutex;
  // Leaked on purpose: tearing down handles after the CUDA runtime has unloaded at exit fails.
  static auto* contexts = new std::vector<std::unique_ptr<Context>>();
  int count = device_count();
  DP_CHECK(count > 0, "no CUDA device is available",
           "check nvidia-smi and the driver, or use device = \"cpu\"");
  DP_CHECK(device >= 0 && device < count,
           fmt::format("CUDA device {} does not exist ({} device(s) present)", device, count),
           "use an index below dp::cuda::device_count()");
  std::lock_guard<std::mutex> lock(mutex);
  if (contexts->empty()) contexts->resize(static_cast<size_t>(count));
  auto& slot = (*contexts)[static_cast<size_t>(device)];
  if (!slot) slot = std::make_unique<Context>(device);
  return *slot;
}

}  // namespace dp::cuda
