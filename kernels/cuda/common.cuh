// Shared pieces of the CUDA launchers: the stream and device of an op, grid sizing, dtype
// dispatch. Included by kernels/cuda/*.cu only (no fmt here: nvcc and fmt's consteval checks
// do not always agree).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <string>
#include <type_traits>

#include <algorithm>
#include <cstdint>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/tensor.h"

namespace dp {
// Lets Tensor::data<__nv_bfloat16>() check the dtype like the host types (device code only).
template <> struct dtype_of<__nv_bfloat16> { static constexpr DType value = DType::BFloat16; };
}  // namespace dp

namespace dp::kernels::cuda::detail {

constexpr int kThreads = 256;

// Storage type -> compute type: bf16 is loaded into float, computed on, and rounded once on
// store (round to nearest even, as dp::bfloat16 does on the host). float and double compute in
// their own precision, so their kernels are unchanged by the bf16 support.
template <class T> struct acc_type { using type = T; };
template <> struct acc_type<__nv_bfloat16> { using type = float; };
template <class T> using acc_t = typename acc_type<T>::type;

template <class T>
__device__ __forceinline__ acc_t<T> to_acc(T v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v);
  else return v;
}
template <class T, class A>
__device__ __forceinline__ T from_acc(A v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16_rn(static_cast<float>(v));
  else return static_cast<T>(v);
}

// Makes the tensor's device current for the launches in scope and exposes its context.
struct OpScope {
  ::dp::cuda::Context& ctx;
  ::dp::cuda::DeviceGuard guard;
  explicit OpScope(const Tensor& t) : ctx(::dp::cuda::context(t.device())), guard(t.device().index) {}
  cudaStream_t stream() const { return ctx.stream(); }
};

// Enough blocks to fill the GPU a few times over; kernels use grid-stride loops.
inline unsigned grid_for(const ::dp::cuda::Context& ctx, int64_t n, int threads = kThreads) {
  int64_t blocks = (n + threads - 1) / threads;
  int64_t cap = static_cast<int64_t>(ctx.sm_count()) * 32;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(blocks, cap)));
}

[[noreturn]] inline void unsupported_dtype(const char* op, DType dtype) {
  DP_THROW(std::string(op) + ": dtype " + dtype_name(dtype) + " is not supported on CUDA",
           "use float32 tensors on the GPU (float64 is CPU-only for this op)");
}

}  // namespace dp::kernels::cuda::detail

// One dispatch case: scalar_t names the C++ type of `dt` inside the body.
#define DP_CUDA_TYPE_CASE(dt, type, ...) \
  case dt: {                             \
    using scalar_t = type;               \
    return __VA_ARGS__();                \
  }

// Runs a templated body for float32 or float64 tensors.
#define DP_CUDA_FLOAT_TYPES(dtype, op_name, ...)                                   \
  [&] {                                                                            \
    switch (dtype) {                                                               \
      DP_CUDA_TYPE_CASE(::dp::DType::Float32, float, __VA_ARGS__)                  \
      DP_CUDA_TYPE_CASE(::dp::DType::Float64, double, __VA_ARGS__)                 \
      default: ::dp::kernels::cuda::detail::unsupported_dtype(op_name, dtype);              \
    }                                                                              \
  }()

// float32, float64 or bfloat16 (activations of the bf16 mode); bodies compute in acc_t<scalar_t>.
#define DP_CUDA_FLOAT_TYPES_BF16(dtype, op_name, ...)                              \
  [&] {                                                                            \
    switch (dtype) {                                                               \
      DP_CUDA_TYPE_CASE(::dp::DType::Float32, float, __VA_ARGS__)                  \
      DP_CUDA_TYPE_CASE(::dp::DType::Float64, double, __VA_ARGS__)                 \
      DP_CUDA_TYPE_CASE(::dp::DType::BFloat16, __nv_bfloat16, __VA_ARGS__)         \
      default: ::dp::kernels::cuda::detail::unsupported_dtype(op_name, dtype);              \
    }                                                                              \
  }()

// Float32 only (cuDNN paths and kernels not worth a float64 variant).
#define DP_CUDA_REQUIRE_FLOAT32(op_name, t)                                        \
  do {                                                                             \
    if ((t).dtype() != ::dp::DType::Float32)                                       \
      ::dp::kernels::cuda::detail::unsupported_dtype(op_name, (t).dtype());                 \
  } while (0)

#define DP_GRID_STRIDE(i, n)                                                              \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
