// Memory-format conversion (Contiguous NCHW <-> ChannelsLast NHWC) of 4-D tensors, with an
// optional dtype change in the same pass (what the bf16 weight casts of the channels-last path
// need). Outputs are preallocated by the caller with the target dtype and format.
#pragma once
#include "engine/tensor.h"

#define DP_LAYOUT_KERNELS                                                                     \
  /* y = x, same logical shape, in y's memory format. Same dtype, or float32 <-> bf16. */    \
  void convert_layout(const Tensor& x, Tensor& y);

namespace dp::kernels::cpu { DP_LAYOUT_KERNELS }
#ifdef DP_WITH_CUDA
namespace dp::kernels::cuda { DP_LAYOUT_KERNELS }
#endif
#undef DP_LAYOUT_KERNELS
