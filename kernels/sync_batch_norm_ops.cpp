// Synchronised batch normalisation (kernels/sync_batch_norm.h).
//
// Forward: the local mean and variance of each rank (the training kernel) are combined exactly
// as one process would see them, with the parallel-variance formula
//   mean = Σ M_r·mean_r / M,  var = Σ M_r·(var_r + (mean_r − mean)²) / M
// (no E[x²] − mean² cancellation), then x is normalised with the global statistics.
// Backward: the local Σdy and Σdy·x̂ (with the global statistics) are weighted by each rank's
// batch share and summed, which gives the single process's dβ and dγ; dx uses those sums, scaled
// back to this rank's loss.
#include "kernels/sync_batch_norm.h"

#include <fmt/format.h>

#include <cmath>

#include "engine/autograd.h"
#include "kernels/batch_norm.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

namespace dp::ops {

namespace {

DType stats_dtype(const Tensor& x) { return x.dtype() == DType::BFloat16 ? DType::Float32 : x.dtype(); }

Tensor channel_tensor(const std::vector<double>& v, const Shape& shape, DType dtype, Device device) {
  return Tensor::from_vector(v, shape).to(dtype).to(device);
}

void sum_over_ranks(const BatchNormSync& sync, std::vector<double>& v) {
  Tensor t = Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
  sync.all_reduce_sum(t);
  const double* p = t.data<double>();
  v.assign(p, p + v.size());
}

struct SyncBatchNormNode final : Node {
  SavedTensor x, gamma, mean, invstd, out;
  double count;  // elements per channel over all ranks
  BatchNormSync sync;
  SyncBatchNormNode(const Tensor& x_, const Tensor& g_, const Tensor& m, const Tensor& i, const Tensor& relu_out,
                    double count_, BatchNormSync s)
      : x(x_.detach()), gamma(g_.defined() ? g_.detach() : Tensor()), mean(m), invstd(i), out(relu_out),
        count(count_), sync(std::move(s)) {}
  const char* name() const override { return "sync_batch_norm"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    const Tensor& xv = x.get(name());
    const Tensor& gv = gamma.get(name());
    const Tensor& mv = mean.get(name());
    const Tensor& iv = invstd.get(name());
    const int64_t c = xv.size(1);
    const DType stats = stats_dtype(xv);
    Tensor dgamma = Tensor::empty({c}, stats, xv.device()), dbeta = Tensor::empty({c}, stats, xv.device());
    Tensor no_dx;
    DP_DISPATCH(g.device(), batch_norm_backward, xv, g, gv, mv, iv, no_dx, dgamma, dbeta, out.get(name()));
    // [share·dγ_r, share·dβ_r] summed over ranks = the single process's dγ, dβ.
    const std::vector<double> dg = dgamma.to_double_vector(), db = dbeta.to_double_vector();
    std::vector<double> sums(static_cast<size_t>(2 * c));
    for (int64_t k = 0; k < c; ++k) {
      sums[k] = sync.local_weight * dg[k];
      sums[c + k] = sync.local_weight * db[k];
    }
    sum_over_ranks(sync, sums);
    const std::vector<double> is = iv.to_double_vector();
    const std::vector<double> gamma_v = gv.defined() ? gv.to_double_vector() : std::vector<double>(c, 1.0);
    std::vector<double> coef(static_cast<size_t>(3 * c));
    const double back_to_local = 1.0 / sync.local_weight;
    for (int64_t k = 0; k < c; ++k) {
      coef[k] = gamma_v[k] * is[k];
      coef[c + k] = back_to_local * sums[c + k] / count;
      coef[2 * c + k] = back_to_local * is[k] * sums[k] / count;
    }
    Tensor coef_t = channel_tensor(coef, {3, c}, stats, xv.device());
    Tensor dx;
    if (inputs[0].requires_grad()) {
      dx = Tensor::empty_like(xv);
      DP_DISPATCH(g.device(), batch_norm_backward_dx, xv, g, mv, coef_t, dx, out.get(name()));
    }
    // This rank's own dγ, dβ (of its local loss): the gradient all-reduce averages them.
    return {dx, gv.defined() ? dgamma : Tensor(), gv.defined() ? dbeta : Tensor()};
  }
  void release() override { x.reset(); gamma.reset(); mean.reset(); invstd.reset(); out.reset(); }
};

}  // namespace

Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, double momentum, double eps, bool relu, const BatchNormSync& sync) {
  DP_CHECK(x.defined() && (x.dim() == 2 || x.dim() == 4),
           fmt::format("sync_batch_norm: input must be [N, C] or [N, C, H, W], got {}", x.defined() ? x.str() : "none"),
           "BatchNorm2d takes NCHW activations");
  DP_CHECK(static_cast<bool>(sync.all_reduce_sum) && sync.local_weight > 0.0,
           "sync_batch_norm: no communicator to sum the statistics over the ranks", "set BatchNormSync");
  if (detail::cpu_channels_last(x))
    return to_memory_format(
        sync_batch_norm(contiguous(x), weight, bias, running_mean, running_var, momentum, eps, relu, sync),
        MemoryFormat::ChannelsLast);
  detail::check_float_or_bf16("sync_batch_norm", x);
  const int64_t c = x.size(1);
  const DType stats = stats_dtype(x);
  // Local moments (the normalised output of this pass is not used).
  Tensor local_mean = Tensor::empty({c}, stats, x.device()), local_invstd = Tensor::empty({c}, stats, x.device());
  {
    Tensor scratch = Tensor::empty_like(x), no_rm, no_rv;
    DP_DISPATCH(x.device(), batch_norm_forward_train, x, weight, bias, eps, momentum, no_rm, no_rv, scratch,
                local_mean, local_invstd, false);
  }
  const double m_local = static_cast<double>(x.numel() / std::max<int64_t>(c, 1));
  const std::vector<double> mean_r = local_mean.to_double_vector(), invstd_r = local_invstd.to_double_vector();
  std::vector<double> first(static_cast<size_t>(c + 1));
  for (int64_t k = 0; k < c; ++k) first[k] = m_local * mean_r[k];
  first[c] = m_local;
  sum_over_ranks(sync, first);
  const double count = first[c];
  DP_CHECK(count > 1, fmt::format("sync_batch_norm: training needs more than one value per channel, got {}", count),
           "use a larger global batch");
  std::vector<double> mean(static_cast<size_t>(c)), second(static_cast<size_t>(c));
  for (int64_t k = 0; k < c; ++k) {
    mean[k] = first[k] / count;
    const double var_r = std::max(0.0, 1.0 / (invstd_r[k] * invstd_r[k]) - eps);
    const double d = mean_r[k] - mean[k];
    second[k] = m_local * (var_r + d * d);
  }
  sum_over_ranks(sync, second);
  std::vector<double> var(static_cast<size_t>(c)), invstd(static_cast<size_t>(c));
  for (int64_t k = 0; k < c; ++k) {
    var[k] = second[k] / count;  // biased: what normalises
    invstd[k] = 1.0 / std::sqrt(var[k] + eps);
  }
  if (running_mean.defined()) {
    std::vector<double> rm = running_mean.to_double_vector(), rv = running_var.to_double_vector();
    for (int64_t k = 0; k < c; ++k) {
      rm[k] = (1.0 - momentum) * rm[k] + momentum * mean[k];
      rv[k] = (1.0 - momentum) * rv[k] + momentum * var[k] * count / (count - 1.0);
    }
    running_mean.copy_from(channel_tensor(rm, {c}, running_mean.dtype(), running_mean.device()));
    running_var.copy_from(channel_tensor(rv, {c}, running_var.dtype(), running_var.device()));
  }
  Tensor mean_t = channel_tensor(mean, {c}, stats, x.device());
  Tensor var_t = channel_tensor(var, {c}, stats, x.device());
  Tensor invstd_t = channel_tensor(invstd, {c}, stats, x.device());
  Tensor y = Tensor::empty_like(x);
  DP_DISPATCH(x.device(), batch_norm_forward_eval, x, weight, bias, mean_t, var_t, eps, y, relu);
  if (any_requires_grad({&x, &weight, &bias}))
    record_node(y,
                std::make_shared<SyncBatchNormNode>(x, weight, mean_t, invstd_t, relu ? y.detach() : Tensor(), count,
                                                    sync),
                {x, weight, bias});
  return y;
}

}  // namespace dp::ops
