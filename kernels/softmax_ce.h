// Softmax cross-entropy, mean over the batch, fused forward and backward: the forward pass
// writes the loss and dlogits = (softmax(z) - onehot(y)) / B, which backward scales.
#pragma once
#include "engine/tensor.h"

#define DP_SOFTMAX_CE_KERNELS                                                               \
  /* logits [B,C], labels int64 [B]; loss: one element; dlogits [B,C]. */                   \
  void softmax_ce_forward_backward(const Tensor& logits, const Tensor& labels, Tensor& loss, \
                                   Tensor& dlogits);

namespace dp::kernels::cpu { DP_SOFTMAX_CE_KERNELS }
#ifdef DP_WITH_CUDA
namespace dp::kernels::cuda { DP_SOFTMAX_CE_KERNELS }
#endif
#undef DP_SOFTMAX_CE_KERNELS
