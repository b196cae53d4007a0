// Batch normalisation with statistics over the global batch of a data-parallel job
// (run.sync_batchnorm = true): the per-channel moments in forward and the per-channel gradient
// sums in backward are summed over the ranks, so N ranks compute what one process computes.
//
// The kernels are the ones of kernels/batch_norm.h (local moments, normalisation with given
// statistics, local gradient sums, dx from given coefficients); the per-channel vectors between
// them go through the host, where the job's MPI communicator sums them. That is a host wait per
// BN layer on CUDA (correct, not fast: the GPU path of sync BN is compiled, GPU validation pending).
#pragma once
#include <functional>

#include "engine/tensor.h"

namespace dp::ops {

struct BatchNormSync {
  // Sums a CPU float64 tensor over every rank, in place (same call order on every rank).
  std::function<void(Tensor&)> all_reduce_sum;
  // This rank's share of the global batch, b_r / B: its loss is the mean over its b_r samples,
  // so its upstream gradients are 1/share times the single process's.
  double local_weight = 1.0;
};

// Training mode only (eval mode normalises with the running statistics, nothing to sync).
// running_mean/var (optional) get the global batch's mean and unbiased variance.
Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, double momentum, double eps, bool relu, const BatchNormSync& sync);

}  // namespace dp::ops
