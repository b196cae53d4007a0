// Fused multi-tensor model SGD on CUDA (semantics: train/sgd.h). One launch updates up to
// kSgdMaxTensors tensors whose pointers travel in the kernel's parameter block.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dp::kernels {

constexpr int kSgdMaxTensors = 64;

struct SgdTensorTable {
  int count = 0;
  float* w[kSgdMaxTensors];
  const float* g[kSgdMaxTensors];
  float* buf[kSgdMaxTensors];
  int64_t n[kSgdMaxTensors];
  unsigned char first[kSgdMaxTensors];  // the tensor's first step: buf ← g
};

void sgd_step_cuda(const SgdTensorTable& table, float lr, float momentum, float weight_decay,
                   bool nesterov, cudaStream_t stream);

}  // namespace dp::kernels
