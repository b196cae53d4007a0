// Max, average and global average pooling over NCHW tensors.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace dp::kernels {

struct Pool2dGeometry {
  int64_t n, c, h, w;
  int64_t kernel, stride, pad;
  int64_t p, q;  // output height and width (floor mode, like PyTorch's default)
  static Pool2dGeometry make(const Shape& x, int64_t kernel, int64_t stride, int64_t pad);
};

}  // namespace dp::kernels

#define DP_POOLING_KERNELS                                                                  \
  /* argmax: int32 [N,C,P,Q], the flat h*W+w position of each maximum (first on ties). */   \
  void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& argmax, const Pool2dGeometry& g); \
  void max_pool2d_backward(const Tensor& dy, const Tensor& argmax, Tensor& dx,               \
                           const Pool2dGeometry& g);                                         \
  void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeometry& g);              \
  void avg_pool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dGeometry& g);           \
  void global_avg_pool_forward(const Tensor& x, Tensor& y);                                  \
  void global_avg_pool_backward(const Tensor& dy, Tensor& dx);

namespace dp::kernels::cpu { DP_POOLING_KERNELS }
#ifdef DP_WITH_CUDA
namespace dp::kernels::cuda { DP_POOLING_KERNELS }
#endif
#undef DP_POOLING_KERNELS
