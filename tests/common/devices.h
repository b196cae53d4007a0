// Device parameterisation for op tests (header-only): every op test runs on {cpu, cuda}.
//
//   class ConvTest : public dp::testing::DeviceTest {};
//   TEST_P(ConvTest, MatchesCpu) { EXPECT_TRUE(matches_cpu(device(), op, inputs, tolerance())); }
//   DP_INSTANTIATE_DEVICE_TEST(ConvTest);
//
// The CUDA instance skips with a message when no device answers. On CUDA, `matches_cpu` runs
// the op (and its backward) on float32 copies of the inputs on the device and compares the
// output and every input gradient with the CPU result. On the CPU it runs the op twice and
// demands bit-identical results (the CPU backend is deterministic by contract).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/rng.h"
#include "engine/tensor.h"

namespace dp::testing {

// |actual - expected| <= atol + rtol·max(|expected|, floor·max|expected|), element by element.
// The floor keeps elements near zero (cancellation in a long sum) from demanding more than the
// precision of the tensor's largest values.
struct Tolerance {
  double rtol, atol, floor = 1e-2;
  static Tolerance fp32() { return {1e-5, 1e-6}; }   // strict float32 (CUDA without TF32)
  // TF32 rounds the inputs of every product to 10 mantissa bits, so the error of a dot
  // product scales with its terms, not with its (possibly cancelled) result: compare against
  // the tensor's largest magnitude (floor = 1), as seen on an H100 with K = 5..200.
  static Tolerance tf32() { return {2e-3, 1e-4, 1.0}; }  // cuBLAS/cuDNN with TF32 tensor cores
  static Tolerance bf16() { return {1e-2, 1e-3, 1.0}; }
  static Tolerance exact() { return {0.0, 0.0, 0.0}; }
};

inline ::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected,
                                            Tolerance tol, const std::string& what = "tensor") {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << what << ": shape " << shape_str(actual.shape())
                                         << " != expected " << shape_str(expected.shape());
  std::vector<double> a = actual.to_double_vector(), e = expected.to_double_vector();
  double max_abs = 0.0;
  for (double v : e) max_abs = std::max(max_abs, std::abs(v));
  int64_t bad = 0;
  std::ostringstream msg;
  for (size_t i = 0; i < a.size(); ++i) {
    const double bound = tol.atol + tol.rtol * std::max(std::abs(e[i]), tol.floor * max_abs);
    const bool same = tol.rtol == 0.0 && tol.atol == 0.0 ? std::memcmp(&a[i], &e[i], sizeof(double)) == 0
                                                         : std::abs(a[i] - e[i]) <= bound;
    if (!same && !(std::isnan(a[i]) && std::isnan(e[i]))) {
      if (bad < 5) msg << "\n  [" << i << "] " << a[i] << " vs " << e[i] << " (bound " << bound << ")";
      ++bad;
    }
  }
  if (bad > 0)
    return ::testing::AssertionFailure() << what << ": " << bad << " of " << a.size()
                                         << " elements differ" << msg.str();
  return ::testing::AssertionSuccess();
}

// ‖a − b‖ / ‖b‖: the relative error of a whole tensor, robust to entries near zero (whole-step
// and whole-loop comparisons).
inline double rel_norm_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

class DeviceTest : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    if (GetParam().is_cuda() && !cuda_available())
      GTEST_SKIP() << "no CUDA device in this build or on this machine: the CUDA case is skipped";
  }
  Device device() const { return GetParam(); }
  bool on_cuda() const { return GetParam().is_cuda(); }
};

struct DeviceParamName {
  std::string operator()(const ::testing::TestParamInfo<Device>& info) const {
    return info.param.is_cpu() ? "cpu" : "cuda";
  }
};

#define DP_INSTANTIATE_DEVICE_TEST(Suite)                                                   \
  INSTANTIATE_TEST_SUITE_P(Devices, Suite,                                                  \
                           ::testing::Values(::dp::Device::cpu(), ::dp::Device::cuda()),    \
                           ::dp::testing::DeviceParamName())

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

namespace detail {

struct OpRun {
  Tensor out;
  std::vector<Tensor> grads;  // undefined where the input does not require grad
};

// Runs `op` on copies of `inputs` moved to `device` (floating ones converted to float32 and
// made to require grad when `with_grad`), then backward with fixed weights.
inline OpRun run_op(const OpFn& op, const std::vector<Tensor>& inputs, Device device, bool with_grad) {
  std::vector<Tensor> leaves;
  for (const Tensor& in : inputs) {
    if (!in.defined()) {
      leaves.emplace_back();
      continue;
    }
    const bool floating = in.dtype() == DType::Float32 || in.dtype() == DType::Float64;
    Tensor leaf = (floating ? in.to(DType::Float32) : in).to(Device::cpu()).clone().to(device);
    if (floating && with_grad) leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  OpRun run;
  run.out = op(leaves);
  if (with_grad && run.out.requires_grad()) {
    Rng rng(7, 7);
    std::vector<float> r(static_cast<size_t>(run.out.numel()));
    for (float& e : r) e = static_cast<float>(rng.uniform(-1.0, 1.0));
    run.out.backward(Tensor::from_vector(r, run.out.shape()).to(device));
  }
  for (Tensor& leaf : leaves)
    run.grads.push_back(leaf.defined() && leaf.requires_grad() ? leaf.grad() : Tensor());
  return run;
}

}  // namespace detail

// Compares `op` on `device` with the CPU (see the top of this file); `with_grad` adds the
// gradients of every floating-point input.
inline ::testing::AssertionResult matches_cpu(Device device, const OpFn& op,
                                              const std::vector<Tensor>& inputs, Tolerance tol,
                                              bool with_grad = true) {
  detail::OpRun ref = detail::run_op(op, inputs, Device::cpu(), with_grad);
  detail::OpRun got = detail::run_op(op, inputs, device, with_grad);
  if (device.is_cpu()) tol = Tolerance::exact();
  auto r = all_close(got.out, ref.out, tol, "output");
  if (!r) return r;
  for (size_t i = 0; i < ref.grads.size(); ++i) {
    if (!ref.grads[i].defined()) continue;
    if (!got.grads[i].defined())
      return ::testing::AssertionFailure() << "input " << i << " has no gradient on " << device.str();
    r = all_close(got.grads[i], ref.grads[i], tol, "gradient of input " + std::to_string(i));
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace dp::testing
