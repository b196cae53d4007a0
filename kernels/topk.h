// Top-1 / top-5 correct counts of a batch of logits, on the logits' device, so that a training
// loop can keep its running accuracy without copying logits to the host every step.
#pragma once
#include "engine/tensor.h"

#define DP_TOPK_KERNELS                                                                       \
  /* logits float32 [B, C], labels int64 [B]; counts int64 [2] += (top-1, top-5) correct. */ \
  /* A label is in the top k when fewer than k classes score strictly higher (a tie counts */ \
  /* in the label's favour). A label outside [0, C) counts as wrong (never read out of */    \
  /* bounds; the loss, computed first, reports such labels). */                             \
  void topk_correct_accumulate(const Tensor& logits, const Tensor& labels, Tensor& counts);

namespace dp::kernels::cpu { DP_TOPK_KERNELS }
#ifdef DP_WITH_CUDA
namespace dp::kernels::cuda { DP_TOPK_KERNELS }
#endif
#undef DP_TOPK_KERNELS
