// Per-device CUDA state: the compute stream, the cuBLAS and cuDNN handles bound to it and a
// scratch workspace, created lazily on first use; plus the process-wide numeric switches.
//
// Every op on a CUDA tensor runs on context(device).stream(). That stream is a *blocking*
// stream, so work queued on the legacy default stream (stream 0) still orders with it.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <mutex>
#include <vector>

#include "engine/device.h"

namespace dp::cuda {

// Number of usable CUDA devices; 0 on any error (no driver, no device), never throws.
int device_count();

class Context {
 public:
  explicit Context(int device);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas();  // created on first use, bound to stream()
  cudnnHandle_t cudnn();    // created on first use, bound to stream()
  const cudaDeviceProp& properties() const { return props_; }
  int sm_count() const { return props_.multiProcessorCount; }

  // Device scratch of at least nbytes for cuDNN/cuBLAS calls on stream(). Valid until the next
  // workspace() call on this context; grows, never shrinks (free it with release_workspace()).
  // A buffer handed out during a CUDA graph capture is never freed (the graph replays into it).
  void* workspace(size_t nbytes);
  void release_workspace();

  void synchronize();  // waits for stream()

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cudaDeviceProp props_{};
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  bool workspace_in_graph_ = false;        // handed out during a CUDA graph capture
  std::vector<void*> retired_workspaces_;  // outgrown, but recorded in a graph: never freed
  void* cublas_workspace_ = nullptr;
  std::mutex mutex_;
};

// The context of a device (created on first call; throws dp::Error when the device is unusable).
// Contexts live until the process exits; users never create or destroy them.
Context& context(int device);
inline Context& context(Device device) { return context(device.index); }

// Makes a device current for a scope (restores the previous one).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// TF32 tensor-core math for float32 GEMMs and convolutions (default on, like PyTorch's
// torch.backends.cudnn.allow_tf32). Off gives strict float32 (~1e-6 relative agreement with
// the CPU instead of ~1e-3).
void set_allow_tf32(bool allow);
bool allow_tf32();

// Restrict cuDNN to deterministic algorithms (default off).
void set_deterministic(bool deterministic);
bool deterministic();

// Pick convolution algorithms by timing them once per shape (cudnnFind*, like
// torch.backends.cudnn.benchmark) instead of cuDNN's heuristics (default off).
void set_cudnn_benchmark(bool benchmark);
bool cudnn_benchmark();

}  // namespace dp::cuda
