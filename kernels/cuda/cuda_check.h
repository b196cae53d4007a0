// Launch/return-code check for the data-parameter kernels (until the engine's CUDA error macro
// exists): throws dp::Error with the CUDA error string.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "engine/error.h"

#define DP_TRAIN_CUDA_CHECK(expr)                                                               \
  do {                                                                                          \
    cudaError_t dp_err_ = (expr);                                                               \
    if (dp_err_ != cudaSuccess)                                                                 \
      DP_THROW(std::string(#expr) + " failed: " + cudaGetErrorString(dp_err_),                 \
               "check that a CUDA device is present and that the tensors live on it");         \
  } while (0)
