// One macro family for CUDA runtime, cuBLAS, cuDNN and NCCL return codes. Each expands to
// dp::cuda::check_status(status, "expr", __FILE__, __LINE__), overloaded on the status type,
// which throws dp::Error with file:line, the status name and a hint of what to do.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#if __has_include(<nccl.h>)
#include <nccl.h>
#define DP_HAVE_NCCL_HEADER 1
#endif

#include "engine/error.h"

namespace dp::cuda {

void check_status(cudaError_t status, const char* expr, const char* file, int line);
void check_status(cublasStatus_t status, const char* expr, const char* file, int line);
void check_status(cudnnStatus_t status, const char* expr, const char* file, int line);
#ifdef DP_HAVE_NCCL_HEADER
void check_status(ncclResult_t status, const char* expr, const char* file, int line);
#endif

const char* status_name(cublasStatus_t status);

}  // namespace dp::cuda

// The fast path (success) stays inline; the throwing path lives in check.cpp.
#define DP_CUDA_CHECK_IMPL_(expr, ok)                                         \
  do {                                                                        \
    auto dp_status_ = (expr);                                                 \
    if (dp_status_ != (ok))                                                   \
      ::dp::cuda::check_status(dp_status_, #expr, __FILE__, __LINE__);        \
  } while (0)

#define DP_CUDA_CHECK(expr) DP_CUDA_CHECK_IMPL_(expr, cudaSuccess)
#define DP_CUBLAS_CHECK(expr) DP_CUDA_CHECK_IMPL_(expr, CUBLAS_STATUS_SUCCESS)
#define DP_CUDNN_CHECK(expr) DP_CUDA_CHECK_IMPL_(expr, CUDNN_STATUS_SUCCESS)
#ifdef DP_HAVE_NCCL_HEADER
#define DP_NCCL_CHECK(expr) DP_CUDA_CHECK_IMPL_(expr, ncclSuccess)
#endif

// After a kernel launch: catches bad launch configurations at the call site (asynchronous
// faults surface at the next synchronising call, also through DP_CUDA_CHECK).
#define DP_CUDA_CHECK_LAUNCH() DP_CUDA_CHECK(cudaGetLastError())
