// Runs a templated body for a float32 or float64 tensor: CPU kernels compute in the
// tensor's own precision so that finite-difference tests can run in float64.
#pragma once
#include <fmt/format.h>

#include "engine/tensor.h"

#define DP_CPU_FLOAT_TYPES(dtype, op_name, ...)                                          \
  [&] {                                                                                  \
    switch (dtype) {                                                                     \
      case ::dp::DType::Float32: {                                                       \
        using scalar_t = float;                                                          \
        return __VA_ARGS__();                                                            \
      }                                                                                  \
      case ::dp::DType::Float64: {                                                       \
        using scalar_t = double;                                                         \
        return __VA_ARGS__();                                                            \
      }                                                                                  \
      default:                                                                           \
        DP_THROW(fmt::format("{}: dtype {} is not supported on the CPU", op_name,        \
                             ::dp::dtype_name(dtype)),                                   \
                 "use float32 or float64 tensors on the CPU");                           \
    }                                                                                    \
  }()
