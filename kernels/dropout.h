// Inverted dropout with a Philox mask: element i is kept when
// philox_uniform(seed, stream, i) >= p, so the mask needs no storage and CPU == CUDA.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

#define DP_DROPOUT_KERNELS                                                                    \
  /* Applies the mask to x (forward) or to dy (backward): the same operation. */             \
  void dropout_apply(const Tensor& x, double p, uint64_t seed, uint64_t stream, Tensor& y);

namespace dp::kernels::cpu { DP_DROPOUT_KERNELS }
#ifdef DP_WITH_CUDA
namespace dp::kernels::cuda { DP_DROPOUT_KERNELS }
#endif
#undef DP_DROPOUT_KERNELS
