// Finite-difference gradient checking in float64 (header-only; link with dp_core and gtest).
//
//   auto f = [](const std::vector<Tensor>& in) { return kernels::conv2d(in[0], in[1], in[2], 1, 1); };
//   EXPECT_TRUE(dp::testing::gradcheck(f, {x, w, b}));
//
// The op's output y is reduced to L = Σ y·R with fixed random weights R, so every output
// element contributes. Analytic gradients come from L.backward(); numerical ones from central
// differences of L, one input element at a time. An element is skipped as a kink (ReLU at 0,
// max-pool ties, ...) when the two one-sided differences disagree, or when `skip` says so.
// The tolerance is relative to the larger of the two gradients, floored at a fraction of the
// input's largest gradient, so tiny gradients next to large ones do not fail on rounding.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/rng.h"
#include "engine/tensor.h"

namespace dp::testing {

// A float64 CPU tensor with values uniform in [lo, hi) drawn from `rng`.
inline Tensor random_tensor(const Shape& shape, Rng& rng, double lo = -1.0, double hi = 1.0,
                            DType dtype = DType::Float64) {
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (double& e : v) e = rng.uniform(lo, hi);
  return Tensor::from_vector(v, shape).to(dtype);
}

struct GradcheckOptions {
  double step = 1e-6;         // central-difference step
  double rtol = 1e-5;         // relative tolerance on each gradient element
  double atol = 1e-8;         // absolute floor
  double scale_floor = 1e-2;  // tolerance floor as a fraction of the input's largest gradient
  double kink_tol = 1e-4;     // skip when one-sided slopes differ by more than this (relative)
  uint64_t seed = 20240611;   // for the output weights R
  // Inputs to differentiate (default: every floating-point input).
  std::vector<bool> wrt;
  // Extra skip rule: (input index, flat element index, input values) -> skip?
  std::function<bool(size_t, int64_t, const Tensor&)> skip;
  int max_reported = 8;
};

namespace detail {

inline double weighted_sum(const Tensor& y, const std::vector<double>& r) {
  std::vector<double> v = y.to_double_vector();
  double acc = 0.0;
  for (size_t i = 0; i < v.size(); ++i) acc += v[i] * r[i];
  return acc;
}

}  // namespace detail

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;

inline ::testing::AssertionResult gradcheck(const GradFn& f, const std::vector<Tensor>& inputs,
                                            GradcheckOptions opt = {}) {
  // Leaf float64 copies of the inputs.
  std::vector<Tensor> leaves;
  std::vector<bool> wrt(inputs.size(), false);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    if (!in.defined()) {
      leaves.emplace_back();
      continue;
    }
    const bool floating = in.dtype() == DType::Float32 || in.dtype() == DType::Float64;
    Tensor leaf = floating ? in.to(Device::cpu()).to(DType::Float64).clone() : in.clone();
    wrt[i] = floating && (opt.wrt.empty() || (i < opt.wrt.size() && opt.wrt[i]));
    if (wrt[i]) leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }

  Tensor y = f(leaves);
  if (!y.defined()) return ::testing::AssertionFailure() << "the op returned an undefined tensor";
  Rng rng(opt.seed, 1);
  std::vector<double> r(static_cast<size_t>(y.numel()));
  for (double& e : r) e = rng.uniform(-1.0, 1.0);
  y.backward(Tensor::from_vector(r, y.shape()));

  std::ostringstream failures;
  int reported = 0;
  int64_t checked = 0, skipped = 0, failed = 0;
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!wrt[i]) continue;
    Tensor& leaf = leaves[i];
    if (!leaf.grad().defined())
      return ::testing::AssertionFailure() << "input " << i << " received no gradient";
    std::vector<double> analytic = leaf.grad().to_double_vector();
    double max_grad = 0.0;
    for (double a : analytic) max_grad = std::max(max_grad, std::abs(a));
    NoGradGuard no_grad;
    double* p = leaf.data<double>();
    for (int64_t k = 0; k < leaf.numel(); ++k) {
      if (opt.skip && opt.skip(i, k, leaf)) {
        ++skipped;
        continue;
      }
      const double x0 = p[k];
      const double l0 = detail::weighted_sum(f(leaves), r);
      p[k] = x0 + opt.step;
      const double lp = detail::weighted_sum(f(leaves), r);
      p[k] = x0 - opt.step;
      const double lm = detail::weighted_sum(f(leaves), r);
      p[k] = x0;
      const double right = (lp - l0) / opt.step, left = (l0 - lm) / opt.step;
      const double numeric = (lp - lm) / (2 * opt.step);
      if (std::abs(right - left) > opt.kink_tol * std::max({1.0, std::abs(right), std::abs(left)})) {
        ++skipped;
        continue;
      }
      ++checked;
      const double a = analytic[static_cast<size_t>(k)];
      const double tol =
          opt.atol + opt.rtol * std::max({std::abs(a), std::abs(numeric), opt.scale_floor * max_grad});
      if (std::abs(a - numeric) > tol) {
        ++failed;
        if (reported++ < opt.max_reported)
          failures << "\n  input " << i << " element " << k << ": analytic " << a << ", numeric "
                   << numeric << " (|diff| " << std::abs(a - numeric) << " > tol " << tol << ")";
      }
    }
  }
  if (failed > 0)
    return ::testing::AssertionFailure() << failed << " of " << checked << " gradient elements differ ("
                                         << skipped << " skipped as kinks)" << failures.str();
  if (checked == 0) return ::testing::AssertionFailure() << "no gradient element was checked";
  return ::testing::AssertionSuccess() << checked << " elements checked, " << skipped << " skipped";
}

}  // namespace dp::testing
