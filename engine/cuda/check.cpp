#include "engine/cuda/check.h"

#include <fmt/format.h>

#include <string>

namespace dp::cuda {

namespace {

[[noreturn]] void fail(const char* file, int line, const char* library, const char* name,
                       const std::string& detail, const char* expr, const std::string& hint) {
  std::string message = fmt::format("{} error {} in `{}`", library, name, expr);
  if (!detail.empty()) message += ": " + detail;
  throw_error(file, line, message, hint);
}

}  // namespace

void check_status(cudaError_t status, const char* expr, const char* file, int line) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear a sticky-free error so that later calls are not blamed for it
  std::string hint;
  switch (status) {
    case cudaErrorMemoryAllocation:
      hint = "out of GPU memory: reduce the batch size, or call dp::cuda::empty_cache()";
      break;
    case cudaErrorInsufficientDriver:
    case cudaErrorNoDevice:
      hint = "no usable CUDA device or driver: check nvidia-smi, or use device = \"cpu\"";
      break;
    case cudaErrorInvalidDevice:
      hint = "the device index is out of range: check dp::cuda::device_count()";
      break;
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
      hint = "a kernel faulted (the context is now unusable): rerun under compute-sanitizer, "
             "and note that the failing call may be later than the faulty launch";
      break;
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidDeviceFunction:
      hint = "the binary has no code for this GPU: rebuild with -Dgpu_arch=<its compute capability>";
      break;
    default:
      hint = "see the CUDA runtime documentation for this error";
  }
  fail(file, line, "CUDA", cudaGetErrorName(status), cudaGetErrorString(status), expr, hint);
}

const char* status_name(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

void check_status(cublasStatus_t status, const char* expr, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  std::string hint;
  switch (status) {
    case CUBLAS_STATUS_NOT_INITIALIZED:
      hint = "cuBLAS could not start: no usable GPU or driver, or libcublas does not match the driver";
      break;
    case CUBLAS_STATUS_ALLOC_FAILED:
      hint = "out of GPU memory inside cuBLAS: reduce the batch size";
      break;
    case CUBLAS_STATUS_INVALID_VALUE:
      hint = "a matrix size or leading dimension is invalid (negative, zero or over 2^31)";
      break;
    default:
      hint = "see the cuBLAS documentation for this status";
  }
  fail(file, line, "cuBLAS", status_name(status), "", expr, hint);
}

void check_status(cudnnStatus_t status, const char* expr, const char* file, int line) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  std::string hint;
  switch (status) {
    case CUDNN_STATUS_NOT_INITIALIZED:
      hint = "cuDNN could not start: no usable GPU or driver, or libcudnn does not match the CUDA runtime";
      break;
    case CUDNN_STATUS_BAD_PARAM:
      hint = "a tensor shape, stride or setting is invalid for cuDNN (check the layer's sizes)";
      break;
    case CUDNN_STATUS_NOT_SUPPORTED:
      hint = "this configuration is not supported by cuDNN (dtype, layout or algorithm)";
      break;
    case CUDNN_STATUS_ALLOC_FAILED:
      hint = "out of GPU memory inside cuDNN: reduce the batch size";
      break;
    default:
      hint = "set CUDNN_LOGERR_DBG=1 and CUDNN_LOGDEST_DBG=stderr for cuDNN's own explanation";
  }
  char detail[256] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  fail(file, line, "cuDNN", cudnnGetErrorString(status), detail, expr, hint);
}

#ifdef DP_HAVE_NCCL_HEADER
// Named here rather than with ncclGetErrorString so that libnccl need not be linked.
void check_status(ncclResult_t status, const char* expr, const char* file, int line) {
  if (status == ncclSuccess) return;
  const char* name = "ncclUnknownError";
  std::string hint = "set NCCL_DEBUG=INFO for NCCL's own explanation";
  switch (status) {
    case ncclUnhandledCudaError: name = "ncclUnhandledCudaError"; break;
    case ncclSystemError:
      name = "ncclSystemError";
      hint = "a system call failed (network, shared memory): set NCCL_DEBUG=INFO";
      break;
    case ncclInternalError: name = "ncclInternalError"; break;
    case ncclInvalidArgument: name = "ncclInvalidArgument"; break;
    case ncclInvalidUsage:
      name = "ncclInvalidUsage";
      hint = "the ranks disagree on the call sequence or sizes: every rank must make the same collectives";
      break;
    case ncclRemoteError:
      name = "ncclRemoteError";
      hint = "another rank failed or disconnected: check its log";
      break;
    default: break;
  }
  fail(file, line, "NCCL", name, "", expr, hint);
}
#endif

}  // namespace dp::cuda
