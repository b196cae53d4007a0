// Synchronised batch normalisation (kernels/sync_batch_norm.h).
//
// Each phase of one process's batch-norm kernels that reduces over the batch is split into this
// rank's float64 partial sums (kernels/batch_norm.h: batch_norm_moment_sums, _grad_sums) and the
// same finishing arithmetic applied to their totals over the ranks (_forward_from_sums,
// _backward_from_sums). Forward: Σx, then Σ(x - mean)² with the global mean (the two-pass
// variance of the one-process kernel). Backward: Σdy and Σdy·(x - mean), each rank's weighted by
// its batch share (its loss is its local mean), so the totals are the single process's; dx is
// scaled back to this rank's loss. The per-channel sums stay float64 until the end: rounding each
// rank's partial sum to float32 first would lose the digits of a channel whose sum cancels
// (measured: dβ 1.6e-3 apart from one process's on a WRN-10-1, and every gradient upstream with it).
// Everything stays on the tensors' device; the only waits are the all-reduces'.
#include "kernels/sync_batch_norm.h"

#include <fmt/format.h>

#include <cmath>

#include "engine/autograd.h"
#include "kernels/batch_norm.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

namespace dp::kernels {

namespace {

DType stats_dtype(const Tensor& x) { return x.dtype() == DType::BFloat16 ? DType::Float32 : x.dtype(); }

// Values per channel over all ranks: this rank's, divided by its share of the global batch.
double global_count(double local, const BatchNormSync& sync) {
  const double total = std::round(local / sync.local_weight);
  DP_CHECK(total > 1 && std::abs(total * sync.local_weight - local) < 1e-6 * local,
           fmt::format("sync_batch_norm: {} values per channel here are not a share {} of a whole number of values "
                       "(over all ranks: {})",
                       local, sync.local_weight, total),
           "set BatchNormSync::local_weight to this rank's rows / the global batch's rows (> 1 value per channel)");
  return total;
}

struct SyncBatchNormNode final : Node {
  SavedTensor x, gamma, mean, invstd, out;
  double count;  // values per channel over all ranks
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
    const Tensor& relu_out = out.get(name());
    const int64_t c = xv.size(1);
    Tensor sums = Tensor::empty({2, c}, DType::Float64, xv.device());
    DP_DISPATCH(g.device(), batch_norm_grad_sums, xv, g, mv, relu_out, sync.local_weight, sums);
    sync.all_reduce_sum(sums);
    // dγ and dβ of the global batch (the single process's, the same on every rank): the gradient
    // all-reduce's share-weighted average of equal values returns them unchanged.
    const DType stats = stats_dtype(xv);
    Tensor dgamma = gv.defined() ? Tensor::empty({c}, stats, xv.device()) : Tensor();
    Tensor dbeta = gv.defined() ? Tensor::empty({c}, stats, xv.device()) : Tensor();
    Tensor dx = inputs[0].requires_grad() ? Tensor::empty_like(xv) : Tensor();
    DP_DISPATCH(g.device(), batch_norm_backward_from_sums, xv, g, gv, mv, iv, sums, count, 1.0 / sync.local_weight,
                dx, dgamma, dbeta, relu_out);
    return {dx, dgamma, dbeta};
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
  const double count = global_count(static_cast<double>(x.numel() / std::max<int64_t>(c, 1)), sync);
  Tensor sums = Tensor::empty({2, c}, DType::Float64, x.device());
  Tensor total_sum = sums.narrow0(0, 1).view({c}), total_sq_dev = sums.narrow0(1, 1).view({c}), none;
  DP_DISPATCH(x.device(), batch_norm_moment_sums, x, none, count, total_sum);
  sync.all_reduce_sum(total_sum);
  DP_DISPATCH(x.device(), batch_norm_moment_sums, x, total_sum, count, total_sq_dev);
  sync.all_reduce_sum(total_sq_dev);
  Tensor mean_t = Tensor::empty({c}, stats, x.device()), invstd_t = Tensor::empty({c}, stats, x.device());
  Tensor y = Tensor::empty_like(x);
  DP_DISPATCH(x.device(), batch_norm_forward_from_sums, x, weight, bias, sums, count, eps, momentum, running_mean,
              running_var, y, mean_t, invstd_t, relu);
  if (any_requires_grad({&x, &weight, &bias}))
    record_node(y,
                std::make_shared<SyncBatchNormNode>(x, weight, mean_t, invstd_t, relu ? y.detach() : Tensor(), count,
                                                    sync),
                {x, weight, bias});
  return y;
}

}  // namespace dp::kernels
