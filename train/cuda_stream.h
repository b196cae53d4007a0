// The stream the train/ CUDA launches go on. One place to change when the engine's
// dp::cuda::Context (engine/cuda/context.h) provides the current stream.
#pragma once
#ifdef DP_WITH_CUDA
#include <cuda_runtime_api.h>

namespace dp::train {
inline cudaStream_t cuda_stream() { return nullptr; }  // the legacy default stream
}  // namespace dp::train
#endif
