// Batch normalisation over (N, H, W) per channel of an NCHW or channels-last tensor (or over N
// of [N, C]). save_mean / save_invstd ([C]) keep the batch statistics for backward.
//
// Fused ReLU (DESIGN: fuse what is memory-bound): with relu = true the forward passes write
// max(y, 0) in the same pass; the backward passes then take that output as relu_out and use
// dy·[relu_out > 0] in place of dy (exactly kernels::relu's backward), so BN+ReLU costs one pass
// over the activation each way instead of two.
#pragma once
#include "engine/tensor.h"

#define DP_BATCH_NORM_KERNELS                                                                 \
  /* running_mean/var may be undefined; when defined they are updated in place with the */    \
  /* unbiased batch variance: running = (1-momentum)·running + momentum·batch. */            \
  void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,     \
                                double eps, double momentum, Tensor& running_mean,            \
                                Tensor& running_var, Tensor& y, Tensor& save_mean,            \
                                Tensor& save_invstd, bool relu = false);                      \
  void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,      \
                               const Tensor& running_mean, const Tensor& running_var,         \
                               double eps, Tensor& y, bool relu = false);                     \
  /* relu_out: the fused forward's output, or undefined (no ReLU). dx may be undefined. */    \
  void batch_norm_backward(const Tensor& x, const Tensor& dy, const Tensor& gamma,            \
                           const Tensor& save_mean, const Tensor& save_invstd, Tensor& dx,    \
                           Tensor& dgamma, Tensor& dbeta, const Tensor& relu_out = Tensor()); \
  /* Eval mode backward: y = (x - mean)·invstd·gamma + beta with fixed statistics. */         \
  void batch_norm_backward_eval(const Tensor& dy, const Tensor& gamma,                        \
                                const Tensor& running_var, double eps, Tensor& dx,            \
                                const Tensor& relu_out = Tensor());                           \
  /* Synchronised BN (kernels/sync_batch_norm.h) in phases: per-channel float64 sums over this */ \
  /* rank's part that the ranks add up, then what batch_norm_forward_train / _backward do with */  \
  /* the totals, in the same arithmetic (N ranks' totals give one process's results). */            \
  /* total_sum undefined: out[c] = Σx; else out[c] = Σ(x - total_sum[c]/count)². out: f64 [C]. */   \
  void batch_norm_moment_sums(const Tensor& x, const Tensor& total_sum, double count,            \
                              Tensor& out);                                                      \
  /* sums f64 [2, C]: the totals Σx and Σ(x - mean)² over `count` values per channel. */          \
  void batch_norm_forward_from_sums(const Tensor& x, const Tensor& gamma, const Tensor& beta,    \
                                    const Tensor& sums, double count, double eps,                \
                                    double momentum, Tensor& running_mean, Tensor& running_var,  \
                                    Tensor& y, Tensor& save_mean, Tensor& save_invstd,           \
                                    bool relu = false);                                          \
  /* out f64 [2, C]: Σdy and Σdy·(x - save_mean) (dy gated by relu_out), times `scale`. */        \
  void batch_norm_grad_sums(const Tensor& x, const Tensor& dy, const Tensor& save_mean,          \
                            const Tensor& relu_out, double scale, Tensor& out);                  \
  /* sums: the totals of batch_norm_grad_sums in the loss's scale; dγ, dβ from them; dx (may */  \
  /* be undefined) for a dy that is dx_scale times the loss's (a rank's local loss). */          \
  void batch_norm_backward_from_sums(const Tensor& x, const Tensor& dy, const Tensor& gamma,      \
                                     const Tensor& save_mean, const Tensor& save_invstd,         \
                                     const Tensor& sums, double count, double dx_scale,          \
                                     Tensor& dx, Tensor& dgamma, Tensor& dbeta,                  \
                                     const Tensor& relu_out = Tensor());

namespace dp::kernels::cpu { DP_BATCH_NORM_KERNELS }
#ifdef DP_WITH_CUDA
namespace dp::kernels::cuda { DP_BATCH_NORM_KERNELS }
#endif
#undef DP_BATCH_NORM_KERNELS
