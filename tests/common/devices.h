// The device harness for op tests (header-only). Every op family has one test file,
// tests/kernels/test_<family>.cpp, that runs its cases through these pieces:
//
//   class ConvTest : public dp::testing::DeviceTest {};       // every device: {cpu, cuda}
//   TEST_P(ConvTest, MatchesCpu) { EXPECT_TRUE(matches_cpu(device(), op, inputs, tolerance())); }
//   DP_INSTANTIATE_DEVICE_TEST(ConvTest);
//   class ConvCuda : public dp::testing::CudaTest {};         // CUDA-only: bf16 mode, TF32, cuDNN modes
//
// The CUDA instances skip with a message when no device answers. On CUDA, `matches_cpu` runs
// the op (and its backward) on float32 copies of the inputs on the device and compares the
// output and every input gradient with the CPU result. On the CPU it runs the op twice and
// demands bit-identical results (the CPU backend is deterministic by contract).
// Dtypes and layouts: `channels_last_matches_cpu` (NHWC activations in float32, float64 or bf16
// against the CPU's NCHW float32 reference) and `bf16_matches_cpu` (the bf16 mode of
// engine/autocast.h on CUDA against float32 on the CPU).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "kernels/ops.h"
#include "tests/common/gradcheck.h"

#ifdef DP_WITH_CUDA
#include "engine/cuda/context.h"
#endif

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
  // A device's float32 (or bf16) result against the CPU's where both sum in their own order:
  // relative to max(|expected|, 0.1·max|expected|), since long sums make near-zero elements carry
  // the rounding of the large ones.
  static Tolerance fp32_reordered() { return {1e-5, 1e-6, 0.1}; }
  static Tolerance bf16_reordered() { return {1e-2, 1e-3, 0.1}; }
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

// Skips the current test (from its body or SetUp) when no CUDA device answers.
#define DP_SKIP_WITHOUT_CUDA()                                                                      \
  do {                                                                                              \
    if (!::dp::cuda_available())                                                                    \
      GTEST_SKIP() << "no CUDA device in this build or on this machine: the CUDA case is skipped"; \
  } while (0)

class DeviceTest : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    if (GetParam().is_cuda()) DP_SKIP_WITHOUT_CUDA();
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

// Cases that only mean something on CUDA (the bf16 mode, TF32 and cuDNN switches, the NHWC
// kernels in every dtype). Name the suite <Family>Cuda, so `--gtest_filter='*/cuda:*Cuda.*'`
// selects every CUDA case of the op tests (the GPU kit runs them under compute-sanitizer).
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override { DP_SKIP_WITHOUT_CUDA(); }
};

// A CUDA-only fixture whose rand(shape, lo, hi) draws float64 uniform inputs from
// Rng(Seed, Stream), afresh for every test (the seeds the GPU-measured tolerances were set with).
template <uint64_t Seed, uint64_t Stream>
class CudaTestWithRng : public CudaTest {
 protected:
  Rng rng_{Seed, Stream};
  Tensor rand(const Shape& s, double lo = -1.0, double hi = 1.0) { return random_tensor(s, rng_, lo, hi); }
};

#ifdef DP_WITH_CUDA
// Restores the process-wide CUDA numeric switches (TF32, deterministic, cuDNN benchmark) that a
// test changes, so later tests see the defaults.
class CudaMathModeGuard {
 public:
  CudaMathModeGuard()
      : tf32_(cuda::allow_tf32()), deterministic_(cuda::deterministic()), benchmark_(cuda::cudnn_benchmark()) {}
  ~CudaMathModeGuard() {
    cuda::set_allow_tf32(tf32_);
    cuda::set_deterministic(deterministic_);
    cuda::set_cudnn_benchmark(benchmark_);
  }
  CudaMathModeGuard(const CudaMathModeGuard&) = delete;
  CudaMathModeGuard& operator=(const CudaMathModeGuard&) = delete;

 private:
  bool tf32_, deterministic_, benchmark_;
};

// Runs `body(tolerance)` with TF32 off (strict float32) and on (TF32 bounds).
template <class Body>
void for_each_math_mode(Body&& body) {
  CudaMathModeGuard restore;
  for (bool tf32 : {false, true}) {
    SCOPED_TRACE(tf32 ? "TF32 on" : "strict float32");
    cuda::set_allow_tf32(tf32);
    body(tf32 ? Tolerance::tf32() : Tolerance::fp32_reordered());
  }
}
#endif

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// A 1-D CPU tensor holding `v`.
template <class T>
Tensor vec(const std::vector<T>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
}

// float32 values that bf16 represents exactly (so a bf16 run and the float32 reference see the
// same numbers and only the bf16 mode's own error is measured).
inline Tensor bf16_values(const Tensor& t) { return t.to(DType::Float32).to(DType::BFloat16).to(DType::Float32); }

namespace detail {

struct OpRun {
  Tensor out;
  std::vector<Tensor> grads;       // .grad() of each leaf; undefined where it does not require grad
  std::vector<Tensor> rule_grads;  // what the output's own backward rule returned (when asked for)
};

using SeedFn = std::function<Tensor(const Tensor& out)>;

// Runs `op` on `leaves`; then, when `seed_of` is given and the output requires grad, backward
// with seed_of(output), first through the output's backward rule alone when `rule_grads` (so
// autograd's own format and dtype conversions cannot hide what the rule returned).
inline OpRun run_on_leaves(const OpFn& op, std::vector<Tensor> leaves, const SeedFn& seed_of,
                           bool rule_grads = false) {
  OpRun run;
  run.out = op(leaves);
  if (seed_of && run.out.requires_grad()) {
    Tensor seed = seed_of(run.out);
    if (rule_grads) {
      NoGradGuard no_grad;
      run.rule_grads = run.out.grad_fn()->backward(seed);
    }
    run.out.backward(seed);
  }
  for (Tensor& leaf : leaves) run.grads.push_back(leaf.defined() && leaf.requires_grad() ? leaf.grad() : Tensor());
  return run;
}

// Uniform(-1, 1) float32 weights for backward, on the output's device.
inline Tensor uniform_seed(const Tensor& out) {
  Rng rng(7, 7);
  std::vector<float> r(static_cast<size_t>(out.numel()));
  for (float& e : r) e = static_cast<float>(rng.uniform(-1.0, 1.0));
  return Tensor::from_vector(r, out.shape()).to(out.device());
}

// Uniform(-1, 1) weights that bf16 represents exactly, in the output's dtype and memory format.
inline Tensor bf16_exact_seed(const Tensor& out) {
  Rng rng(7, 7);
  std::vector<double> r(static_cast<size_t>(out.numel()));
  for (double& e : r) e = rng.uniform(-1.0, 1.0);
  Tensor seed = bf16_values(Tensor::from_vector(r, out.shape())).to(out.device());
  return kernels::convert(seed, out.dtype(), out.memory_format());
}

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
  return run_on_leaves(op, leaves, with_grad ? SeedFn(uniform_seed) : SeedFn());
}

// The output and every gradient the reference has, within `tol`.
inline ::testing::AssertionResult same_results(const OpRun& got, const OpRun& ref, Tolerance tol,
                                               const std::string& where) {
  auto r = all_close(got.out, ref.out, tol, "output");
  if (!r) return r;
  for (size_t i = 0; i < ref.grads.size(); ++i) {
    if (!ref.grads[i].defined()) continue;
    if (!got.grads[i].defined())
      return ::testing::AssertionFailure() << "input " << i << " has no gradient on " << where;
    r = all_close(got.grads[i], ref.grads[i], tol, "gradient of input " + std::to_string(i));
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
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
  return detail::same_results(got, ref, tol, device.str());
}

// ---- layouts: channels-last (NHWC) activations ----

struct ChannelsLastCase {
  // The activations' dtype on the device; per-channel parameters are float32 for bf16.
  DType dtype = DType::Float32;
  // Which inputs are activations, stored channels-last on the device (the others are parameters).
  std::vector<bool> channels_last = {true};
  // Device results against the CPU's float32 NCHW ones (the CPU itself must be bit-identical: its
  // channels-last path runs the NCHW kernels between conversions).
  Tolerance tol = Tolerance::tf32();
  // Also compare what the op's own backward rule returned, and demand dx channels-last there.
  bool check_backward_rule = false;

  // A device's own NHWC kernels in `dtype` (float32/float64 sums in another order than the CPU's,
  // bf16 one rounding of each output), with the backward rule's gradients checked too.
  static ChannelsLastCase nhwc_kernels(DType dtype) {
    return {.dtype = dtype,
            .channels_last = {true},
            .tol = dtype == DType::BFloat16 ? Tolerance::bf16_reordered() : Tolerance::fp32_reordered(),
            .check_backward_rule = true};
  }
};

// A 4-D tensor of this shape is stored channels-last unless both formats coincide.
inline bool expect_channels_last(const Tensor& t) { return t.dim() == 4 && !formats_coincide(t.shape()); }

// `op` on channels-last activations on `device` against `op` on NCHW float32 inputs on the CPU:
// the output (its dtype, its values, and its format: channels-last where the shape allows), and
// every input's gradient (values, and the format of its leaf). bf16 inputs are rounded to bf16
// values first, so both sides see the same numbers.
inline ::testing::AssertionResult channels_last_matches_cpu(Device device, const OpFn& op,
                                                            std::vector<Tensor> inputs, ChannelsLastCase c) {
  const auto is_activation = [&](size_t i) { return i < c.channels_last.size() && c.channels_last[i]; };
  if (c.dtype == DType::BFloat16)
    for (Tensor& t : inputs)
      if (t.defined()) t = bf16_values(t);
  const DType param_dtype = c.dtype == DType::BFloat16 ? DType::Float32 : c.dtype;
  std::vector<Tensor> ref_leaves, leaves;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      ref_leaves.emplace_back();
      leaves.emplace_back();
      continue;
    }
    ref_leaves.push_back(inputs[i].to(DType::Float32).clone().set_requires_grad(true));
    Tensor leaf = is_activation(i)
                      ? kernels::convert(inputs[i].to(DType::Float32).to(device), c.dtype, MemoryFormat::ChannelsLast)
                      : inputs[i].to(param_dtype).to(device);
    leaves.push_back(leaf.set_requires_grad(true));
  }
  detail::OpRun ref = detail::run_on_leaves(op, ref_leaves, detail::bf16_exact_seed, c.check_backward_rule);
  detail::OpRun got = detail::run_on_leaves(op, leaves, detail::bf16_exact_seed, c.check_backward_rule);
  const Tolerance tol = device.is_cpu() ? Tolerance::exact() : c.tol;
  if (got.out.dtype() != c.dtype)
    return ::testing::AssertionFailure() << "output is " << got.out.str() << ", expected " << dtype_name(c.dtype);
  if (got.out.is_channels_last() != expect_channels_last(got.out))
    return ::testing::AssertionFailure() << "output " << got.out.str() << " is in the wrong memory format";
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    const std::string what = "input " + std::to_string(i);
    if (!got.grads[i].defined()) return ::testing::AssertionFailure() << what << " has no gradient";
    if (got.grads[i].is_channels_last() != (is_activation(i) && expect_channels_last(got.grads[i])))
      return ::testing::AssertionFailure() << "gradient of " << what << " " << got.grads[i].str()
                                           << " is not in its leaf's memory format";
    if (!c.check_backward_rule) continue;
    const Tensor& rule = got.rule_grads.at(i);
    if (!rule.defined()) return ::testing::AssertionFailure() << what << ": the backward rule gave no gradient";
    if (is_activation(i) && !rule.is_channels_last())
      return ::testing::AssertionFailure() << "the backward rule's d" << what << " " << rule.str()
                                           << " is not channels-last";
    auto r = all_close(rule, ref.rule_grads.at(i), tol, "backward rule's gradient of " + what);
    if (!r) return r;
  }
  return detail::same_results(got, ref, tol, device.str());
}

// ---- dtypes: the bf16 mode (CUDA only) ----

// `op` on CUDA with input i stored as `dtypes[i]` (under autocast when `autocast`) against
// float32 on the CPU, both on bf16-exact inputs and upstream gradients: the output's dtype and
// values, and each input's gradient, which must come back in that input's dtype.
inline ::testing::AssertionResult bf16_matches_cpu(const OpFn& op, const std::vector<Tensor>& inputs,
                                                   const std::vector<DType>& dtypes, bool autocast, DType out_dtype,
                                                   Tolerance tol = Tolerance::bf16_reordered()) {
  std::vector<Tensor> ref_leaves, leaves;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor exact = bf16_values(inputs[i]);
    ref_leaves.push_back(exact.to(DType::Float32).set_requires_grad(true));
    leaves.push_back(exact.to(dtypes[i]).to(Device::cuda()).set_requires_grad(true));
  }
  const OpFn device_op = [&](const std::vector<Tensor>& in) {
    AutocastGuard guard(autocast ? DType::BFloat16 : DType::Float32);
    return op(in);
  };
  detail::OpRun ref = detail::run_on_leaves(op, ref_leaves, detail::bf16_exact_seed);
  detail::OpRun got = detail::run_on_leaves(device_op, leaves, detail::bf16_exact_seed);
  if (got.out.dtype() != out_dtype)
    return ::testing::AssertionFailure() << "output is " << got.out.str() << ", expected " << dtype_name(out_dtype);
  for (size_t i = 0; i < got.grads.size(); ++i)
    if (got.grads[i].defined() && got.grads[i].dtype() != dtypes[i])
      return ::testing::AssertionFailure() << "gradient of input " << i << " is " << got.grads[i].str()
                                           << ", expected " << dtype_name(dtypes[i]);
  return detail::same_results(got, ref, tol, "cuda");
}

}  // namespace dp::testing
