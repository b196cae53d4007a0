// Shared pieces of the CUDA launchers: the stream and device of an op, grid sizing, dtype
// dispatch. Included by kernels/cuda/*.cu only (no fmt here: nvcc and fmt's consteval checks
// do not always agree).
#pragma once
#include <cuda_runtime.h>
#include <string>

#include <algorithm>
#include <cstdint>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/tensor.h"

namespace dp::cuda::detail {

constexpr int kThreads = 256;

// Makes the tensor's device current for the launches in scope and exposes its context.
struct OpScope {
  Context& ctx;
  DeviceGuard guard;
  explicit OpScope(const Tensor& t) : ctx(context(t.device())), guard(t.device().index) {}
  cudaStream_t stream() const { return ctx.stream(); }
};

// Enough blocks to fill the GPU a few times over; kernels use grid-stride loops.
inline unsigned grid_for(const Context& ctx, int64_t n, int threads = kThreads) {
  int64_t blocks = (n + threads - 1) / threads;
  int64_t cap = static_cast<int64_t>(ctx.sm_count()) * 32;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(blocks, cap)));
}

[[noreturn]] inline void unsupported_dtype(const char* op, DType dtype) {
  DP_THROW(std::string(op) + ": dtype " + dtype_name(dtype) + " is not supported on CUDA",
           "use float32 tensors on the GPU (float64 is CPU-only for this op)");
}

}  // namespace dp::cuda::detail

// Runs a templated body for float32 or float64 tensors.
#define DP_CUDA_FLOAT_TYPES(dtype, op_name, ...)                                   \
  [&] {                                                                            \
    switch (dtype) {                                                               \
      case ::dp::DType::Float32: {                                                 \
        using scalar_t = float;                                                    \
        return __VA_ARGS__();                                                      \
      }                                                                            \
      case ::dp::DType::Float64: {                                                 \
        using scalar_t = double;                                                   \
        return __VA_ARGS__();                                                      \
      }                                                                            \
      default: ::dp::cuda::detail::unsupported_dtype(op_name, dtype);              \
    }                                                                              \
  }()

// Float32 only (cuDNN paths and kernels not worth a float64 variant).
#define DP_CUDA_REQUIRE_FLOAT32(op_name, t)                                        \
  do {                                                                             \
    if ((t).dtype() != ::dp::DType::Float32)                                       \
      ::dp::cuda::detail::unsupported_dtype(op_name, (t).dtype());                 \
  } while (0)

#define DP_GRID_STRIDE(i, n)                                                              \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
