// Elementwise kernels and reductions. Same signatures on both backends; outputs are
// preallocated by the caller with the right shape, dtype and device.
#pragma once
#include "engine/tensor.h"

#define DP_ELEMENTWISE_KERNELS                                                        \
  void fill(Tensor& t, double value);                                                 \
  void cast(const Tensor& x, Tensor& y);               /* y has the target dtype */   \
  /* relu: out = max(a + b, 0) in the same pass (NaN -> 0, like relu_forward) */       \
  void add(const Tensor& a, const Tensor& b, Tensor& out, bool relu = false);         \
  void axpy(double alpha, const Tensor& x, Tensor& y); /* y += alpha*x */             \
  void scale(const Tensor& x, double s, Tensor& out);                                 \
  /* out = x·s[0], s one element of x's dtype on x's device (read there: no host wait) */ \
  void scale_by_tensor(const Tensor& x, const Tensor& s, Tensor& out);                \
  void relu_forward(const Tensor& x, Tensor& y);                                      \
  void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx); /* dy·[y>0] */   \
  void sum_all(const Tensor& x, Tensor& out);          /* out: one element */         \
  void broadcast_scalar(const Tensor& s, double factor, Tensor& out); /* out[:]=s·f */

namespace dp::kernels::cpu { DP_ELEMENTWISE_KERNELS }
#ifdef DP_WITH_CUDA
namespace dp::kernels::cuda { DP_ELEMENTWISE_KERNELS }
#endif
#undef DP_ELEMENTWISE_KERNELS
