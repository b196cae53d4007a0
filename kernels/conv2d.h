// 2-D convolution, NCHW activations, KCRS weights, dilation 1, groups 1.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace dp::kernels {

struct Conv2dGeometry {
  int64_t n, c, h, w;  // input
  int64_t k, r, s;     // filters
  int64_t stride, pad;
  int64_t p, q;  // output height and width
  static Conv2dGeometry make(const Shape& x, const Shape& w, int64_t stride, int64_t pad);
};

}  // namespace dp::kernels

#define DP_CONV2D_KERNELS                                                                    \
  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,          \
                      const Conv2dGeometry& g);                                              \
  void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,                   \
                            const Conv2dGeometry& g);                                        \
  /* db may be undefined (no bias). dw and db are overwritten. */                            \
  void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,     \
                              const Conv2dGeometry& g);

namespace dp::kernels::cpu { DP_CONV2D_KERNELS }
#ifdef DP_WITH_CUDA
namespace dp::kernels::cuda { DP_CONV2D_KERNELS }
#endif
#undef DP_CONV2D_KERNELS
