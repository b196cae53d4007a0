// CUDA launchers for the fused data-parameter cross-entropy (see kernels/cpu/data_param_ce.h for
// the contract and the CPU reference). All pointers are device pointers; launches go on `stream`
// and are checked; nothing synchronises.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/data_param_ce.h"

namespace dp::kernels {

// One warp per row. Writes the loss (mean CE + penalties) to *loss (device scalar), reduced by a
// single block in a fixed order (deterministic). `row_loss_scratch` is [batch] device memory.
// Labels/indices are not validated on the device (that would need a sync): a row with an
// out-of-range label or index gets a NaN loss and NaN gradients instead of reading out of bounds.
template <class T>
void data_param_ce_cuda(const DataParamCeArgs<T>& args, T* loss, T* row_loss_scratch,
                        cudaStream_t stream);

}  // namespace dp::kernels
