// Autograd wrapper for batch normalisation (training and eval modes), optionally with the
// following ReLU fused in (kernels::batch_norm_relu); the nodes then keep the output for the gate.
#include <cmath>

#include "engine/autograd.h"
#include "kernels/batch_norm.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

namespace dp::kernels {

namespace {

// The fused ReLU's output when there is one (undefined otherwise).
Tensor relu_output(const Tensor& y, bool relu) { return relu ? y.detach() : Tensor(); }

struct BatchNormTrainNode final : Node {
  SavedTensor x, gamma, mean, invstd, out;
  bool fused;
  BatchNormTrainNode(const Tensor& x_, const Tensor& g_, const Tensor& m, const Tensor& i, const Tensor& relu_out)
      : x(x_.detach()), gamma(g_.defined() ? g_.detach() : Tensor()), mean(m), invstd(i), out(relu_out),
        fused(relu_out.defined()) {}
  const char* name() const override { return fused ? "batch_norm_relu" : "batch_norm"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    const Tensor& xv = x.get(name());
    const Tensor& gv = gamma.get(name());
    Tensor dx = Tensor::empty_like(xv);
    Tensor dgamma = gv.defined() ? Tensor::empty_like(gv) : Tensor();
    Tensor dbeta = gv.defined() ? Tensor::empty_like(gv) : Tensor();
    DP_DISPATCH(g.device(), batch_norm_backward, xv, g, gv, mean.get(name()), invstd.get(name()), dx,
                dgamma, dbeta, out.get(name()));
    return {inputs[0].requires_grad() ? dx : Tensor(), dgamma, dbeta};
  }
  void release() override { x.reset(); gamma.reset(); mean.reset(); invstd.reset(); out.reset(); }
};

// Eval mode: y = (x - running_mean)·invstd·γ + β with fixed statistics. dγ and dβ come from the
// training backward kernel fed with the running statistics (its dγ, dβ formulas only use the
// given mean and invstd); its dx is discarded and the eval dx kernel used instead.
struct BatchNormEvalNode final : Node {
  SavedTensor x, gamma, running_mean, running_var, invstd, out;
  bool fused;
  double eps;
  BatchNormEvalNode(const Tensor& x_, const Tensor& g_, const Tensor& rm, const Tensor& rv,
                    const Tensor& inv, double e, const Tensor& relu_out)
      : x(x_.detach()), gamma(g_.defined() ? g_.detach() : Tensor()), running_mean(rm.detach()),
        running_var(rv.detach()), invstd(inv), out(relu_out), fused(relu_out.defined()), eps(e) {}
  const char* name() const override { return fused ? "batch_norm_relu(eval)" : "batch_norm(eval)"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    const Tensor& gv = gamma.get(name());
    Tensor dx, dgamma, dbeta;
    if (inputs[0].requires_grad()) {
      dx = Tensor::empty_like(g);
      DP_DISPATCH(g.device(), batch_norm_backward_eval, g, gv, running_var.get(name()), eps, dx, out.get(name()));
    }
    const bool want_affine = (inputs[1].defined() && inputs[1].requires_grad()) ||
                             (inputs[2].defined() && inputs[2].requires_grad());
    if (want_affine) {
      Tensor scratch_dx = Tensor::empty_like(g);
      dgamma = Tensor::empty_like(gv);
      dbeta = Tensor::empty_like(gv);
      DP_DISPATCH(g.device(), batch_norm_backward, x.get(name()), g, gv, running_mean.get(name()),
                  invstd.get(name()), scratch_dx, dgamma, dbeta, out.get(name()));
    }
    return {dx, dgamma, dbeta};
  }
  void release() override {
    x.reset(); gamma.reset(); running_mean.reset(); running_var.reset(); invstd.reset(); out.reset();
  }
};

void check_channel_vector(const char* what, const Tensor& t, const Tensor& x) {
  if (!t.defined()) return;
  detail::check_same_device("batch_norm", x, t);
  // bf16 activations keep float32 parameters and statistics (the bf16 mode of engine/autocast.h).
  const DType want = x.dtype() == DType::BFloat16 ? DType::Float32 : x.dtype();
  DP_CHECK(t.dim() == 1 && t.size(0) == x.size(1) && t.dtype() == want,
           fmt::format("batch_norm: {} is {} but the input {} has {} channels", what, t.str(), x.str(),
                       x.size(1)),
           fmt::format("{} must be a [{}] {} tensor on the input's device", what, x.size(1),
                       dtype_name(want)));
}

// 1/sqrt(running_var + eps) on the host: only used by the rare eval-mode backward into γ/β.
Tensor inverse_std(const Tensor& running_var, double eps) {
  std::vector<double> v = running_var.to_double_vector();
  for (double& e : v) e = 1.0 / std::sqrt(e + eps);
  return Tensor::from_vector(v, running_var.shape()).to(running_var.dtype()).to(running_var.device());
}

Tensor batch_norm_impl(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, bool training, double momentum, double eps, bool relu) {
  DP_CHECK(x.defined(), "batch_norm: input is undefined", "pass a tensor");
  if (detail::cpu_channels_last(x))
    return to_memory_format(
        batch_norm_impl(contiguous(x), weight, bias, running_mean, running_var, training, momentum, eps, relu),
        MemoryFormat::ChannelsLast);
  DP_CHECK(x.dim() == 2 || x.dim() == 4,
           fmt::format("batch_norm: input must be [N, C] or [N, C, H, W], got {}", x.str()),
           "BatchNorm2d takes NCHW activations, BatchNorm1d [N, C] features");
  detail::check_float_or_bf16("batch_norm", x);
  DP_CHECK(weight.defined() == bias.defined(), "batch_norm: weight and bias must both be given or both omitted",
           "pass both affine parameters, or neither (affine = false)");
  check_channel_vector("weight", weight, x);
  check_channel_vector("bias", bias, x);
  check_channel_vector("running_mean", running_mean, x);
  check_channel_vector("running_var", running_var, x);
  DP_CHECK(running_mean.defined() == running_var.defined(),
           "batch_norm: running_mean and running_var must both be given or both omitted",
           "pass both running statistics (track_running_stats) or neither");
  DP_CHECK((!running_mean.defined() || !running_mean.requires_grad()) &&
               (!running_var.defined() || !running_var.requires_grad()),
           "batch_norm: running statistics must not require grad",
           "register running_mean/var as buffers, not parameters");
  DP_CHECK(eps > 0 && momentum >= 0 && momentum <= 1,
           fmt::format("batch_norm: eps {} must be > 0 and momentum {} in [0, 1]", eps, momentum), "");
  Tensor y = Tensor::empty_like(x);
  if (training) {
    const int64_t count = x.numel() / x.size(1);
    DP_CHECK(count > 1,
             fmt::format("batch_norm: training needs more than one value per channel, got {}", x.str()),
             "use a batch of more than one sample, or eval mode");
    const DType stats = x.dtype() == DType::BFloat16 ? DType::Float32 : x.dtype();
    Tensor mean = Tensor::empty({x.size(1)}, stats, x.device());
    Tensor invstd = Tensor::empty({x.size(1)}, stats, x.device());
    DP_DISPATCH(x.device(), batch_norm_forward_train, x, weight, bias, eps, momentum, running_mean,
                running_var, y, mean, invstd, relu);
    if (running_mean.defined()) {
      running_mean.bump_version();
      running_var.bump_version();
    }
    if (any_requires_grad({&x, &weight, &bias}))
      record_node(y, std::make_shared<BatchNormTrainNode>(x, weight, mean, invstd, relu_output(y, relu)),
                  {x, weight, bias});
    return y;
  }
  DP_CHECK(running_mean.defined(), "batch_norm: eval mode needs running_mean and running_var",
           "pass the running statistics, or use training mode");
  DP_DISPATCH(x.device(), batch_norm_forward_eval, x, weight, bias, running_mean, running_var, eps, y, relu);
  if (any_requires_grad({&x, &weight, &bias})) {
    const bool affine_grad = (weight.defined() && weight.requires_grad()) ||
                             (bias.defined() && bias.requires_grad());
    Tensor invstd = affine_grad ? inverse_std(running_var, eps) : Tensor();
    record_node(y,
                std::make_shared<BatchNormEvalNode>(x, weight, running_mean, running_var, invstd, eps,
                                                    relu_output(y, relu)),
                {x, weight, bias});
  }
  return y;
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                  Tensor running_var, bool training, double momentum, double eps) {
  return batch_norm_impl(x, weight, bias, running_mean, running_var, training, momentum, eps, false);
}

Tensor batch_norm_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, bool training, double momentum, double eps) {
  return batch_norm_impl(x, weight, bias, running_mean, running_var, training, momentum, eps, true);
}

}  // namespace dp::kernels
