// Batch normalisation with statistics over the global batch of a data-parallel job
// (run.sync_batchnorm = true): the per-channel moments in forward and the per-channel gradient
// sums in backward are summed over the ranks, so N ranks compute what one process computes.
//
// The kernels are kernels/batch_norm.h's synchronised phases: this rank's float64 per-channel
// sums, summed over the ranks by the job's communicator on the tensors' device (no host copy),
// then one process's arithmetic on the totals, so that N ranks compute what one process computes
// (to the rounding of adding float64 sums in another order).
#pragma once
#include <functional>

#include "engine/tensor.h"

namespace dp::kernels {

struct BatchNormSync {
  // Sums a float64 tensor (on the activations' device) over every rank, in place; every rank
  // makes the same calls in the same order.
  std::function<void(Tensor&)> all_reduce_sum;
  // This rank's share of the global batch, b_r / B: its loss is the mean over its b_r samples,
  // so its upstream gradients are 1/share times the single process's. Also gives the values per
  // channel over all ranks (this rank's / share).
  double local_weight = 1.0;
};

// Training mode only (eval mode normalises with the running statistics, nothing to sync).
// running_mean/var (optional) get the global batch's mean and unbiased variance.
Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, double momentum, double eps, bool relu, const BatchNormSync& sync);

}  // namespace dp::kernels
