// Device dispatch and input checks shared by the op wrappers.
#pragma once
#include <fmt/format.h>

#include "engine/tensor.h"

// DP_DISPATCH(device, fn, args...): calls cpu::fn(args...) or cuda::fn(args...).
#ifdef DP_WITH_CUDA
#define DP_DISPATCH(device, fn, ...) \
  ((device).is_cuda() ? ::dp::kernels::cuda::fn(__VA_ARGS__) : ::dp::kernels::cpu::fn(__VA_ARGS__))
#else
#define DP_DISPATCH(device, fn, ...)                                                      \
  ((device).is_cuda() ? ::dp::kernels::detail::no_cuda<decltype(::dp::kernels::cpu::fn(__VA_ARGS__))>(#fn) \
                      : ::dp::kernels::cpu::fn(__VA_ARGS__))
#endif

namespace dp::kernels::detail {

template <class R>
R no_cuda(const char* op) {
  DP_THROW(fmt::format("{} on a CUDA tensor in a build without CUDA", op),
           "rebuild with -Dcuda=enabled, or keep every tensor on the CPU");
}

// True when x is channels-last on the CPU, whose kernels take NCHW only: the op then runs on
// contiguous(x) and converts its result back (the reference path; CUDA runs NHWC natively).
inline bool cpu_channels_last(const Tensor& x) {
  return x.defined() && x.is_channels_last() && x.device().is_cpu();
}

inline void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) return;
  DP_CHECK(a.device() == b.device(),
           fmt::format("{}: tensors on different devices ({} and {})", op, a.str(), b.str()),
           "move both tensors to the same device with .to(device)");
}

inline void check_dim(const char* op, const char* what, const Tensor& t, int64_t dim) {
  DP_CHECK(t.dim() == dim, fmt::format("{}: {} must have {} dimensions, got {}", op, what, dim, t.str()),
           "check the layer's input shape");
}

inline void check_float(const char* op, const Tensor& t) {
  DP_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64,
           fmt::format("{}: expected a float32 or float64 tensor, got {}", op, t.str()),
           "convert with .to(DType::Float32)");
}

// float32/float64 anywhere, bfloat16 on CUDA (the bf16 mode of engine/autocast.h).
inline void check_float_or_bf16(const char* op, const Tensor& t) {
  if (t.dtype() == DType::BFloat16) {
    DP_CHECK(t.device().is_cuda(), fmt::format("{}: bf16 mode is CUDA-only, got {}", op, t.str()),
             "move the tensors to the GPU, or convert with .to(DType::Float32)");
    return;
  }
  check_float(op, t);
}

}  // namespace dp::kernels::detail
