// Flat parameter storage (train/flat_parameters.h) and the fused model SGD over it (train/sgd.h):
// parameters are views of one buffer, backward writes gradients into the other, and one fused
// update equals the per-parameter update bit for bit; plain SGD allocates nothing per step.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/allocator.h"
#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/tensor.h"
#include "kernels/ops.h"
#include "kernels/training_ops.h"
#include "train/flat_parameters.h"
#include "train/sgd.h"

namespace {

using dp::Shape;
using dp::Tensor;
using dp::train::FlatParameters;

Tensor random_tensor(const Shape& shape, std::mt19937& gen, dp::MemoryFormat format = dp::MemoryFormat::Contiguous) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(dp::shape_numel(shape)));
  for (float& x : v) x = normal(gen);
  Tensor t = Tensor::from_vector(v, shape);
  if (format != dp::MemoryFormat::Contiguous) t = dp::kernels::convert(t, dp::DType::Float32, format);
  return t;
}

// Shapes of a small conv net: odd sizes (padding between slices) and a channels-last weight.
std::vector<Tensor> make_params(unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<Tensor> p = {random_tensor({8, 3, 3, 3}, gen), random_tensor({8}, gen),
                           random_tensor({16, 8, 3, 3}, gen, dp::MemoryFormat::ChannelsLast),
                           random_tensor({1}, gen), random_tensor({10, 16}, gen), random_tensor({10}, gen),
                           random_tensor({70000}, gen)};  // more than one parallel_for task
  for (Tensor& t : p) t.set_requires_grad(true);
  return p;
}

std::vector<Tensor> make_grads(const std::vector<Tensor>& params, std::mt19937& gen) {
  std::vector<Tensor> g;
  for (const Tensor& p : params) g.push_back(random_tensor(p.shape(), gen, p.memory_format()));
  return g;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_float_vector(), y = b.to_float_vector();
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

TEST(FlatParameters, ParametersAreViewsOfTheFlatBuffer) {
  std::vector<Tensor> params = make_params(1);
  std::vector<Tensor> before;
  for (const Tensor& p : params) before.push_back(p.clone());
  Tensor module_handle = params[2];  // another handle to the same tensor, as a Module holds it
  FlatParameters flat(params);
  ASSERT_EQ(flat.size(), params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(params[i].shares_storage(flat.weights())) << i;
    EXPECT_EQ(flat.offset(i) % FlatParameters::kAlignment, 0) << i;
    EXPECT_TRUE(same_bits(params[i], before[i])) << "values moved unchanged, parameter " << i;
    EXPECT_EQ(params[i].memory_format(), before[i].memory_format());
    EXPECT_EQ(static_cast<const float*>(params[i].raw_data()), flat.weights().data<float>() + flat.offset(i));
  }
  EXPECT_TRUE(module_handle.shares_storage(flat.weights())) << "every handle sees the move";
  // Write through the flat buffer, read through the parameter, and back.
  flat.weights().data<float>()[flat.offset(1) + 3] = 42.0f;
  EXPECT_EQ(params[1].to_float_vector()[3], 42.0f);
  params[5].data<float>()[0] = -7.0f;
  EXPECT_EQ(flat.weights().data<float>()[flat.offset(5)], -7.0f);
  EXPECT_TRUE(same_bits(flat.view(flat.weights(), 2), module_handle));
}

TEST(FlatParameters, BackwardWritesGradientsIntoTheFlatBuffer) {
  Tensor w = Tensor::from_vector(std::vector<float>{1.f, 2.f, 3.f}, {3});
  Tensor b = Tensor::from_vector(std::vector<float>{0.5f}, {1});
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  FlatParameters flat({w, b});
  ASSERT_TRUE(w.grad_is_bound());
  const float* slot = w.grad().data<float>();
  EXPECT_EQ(slot, flat.grads().data<float>() + flat.offset(0));
  for (int pass = 1; pass <= 2; ++pass) {  // no zero_grad between passes: gradients accumulate
    Tensor x = Tensor::from_vector(std::vector<float>{2.f, -1.f, 4.f}, {3});
    // loss = sum(w·x·2) (w used twice: two contributions summed into the bound slot)
    Tensor loss = dp::kernels::sum(dp::kernels::add(dp::kernels::mul(w, 1.0), dp::kernels::mul(w, 1.0)));
    Tensor loss2 = dp::kernels::add(loss, dp::kernels::sum(dp::kernels::mul(b, 3.0)));
    loss2.backward();
    EXPECT_EQ(w.grad().data<float>(), slot) << "the gradient stays in its slot";
    EXPECT_EQ(w.grad().to_float_vector(), (std::vector<float>{2.f * pass, 2.f * pass, 2.f * pass}));
    EXPECT_EQ(b.grad().to_float_vector()[0], 3.f * pass);
    const float* g = flat.grads().data<float>();
    EXPECT_EQ(g[flat.offset(0) + 2], 2.f * pass);
    EXPECT_EQ(g[flat.offset(1)], 3.f * pass);
    EXPECT_EQ(g[3], 0.f) << "padding stays zero";
  }
  flat.zero_grad();
  EXPECT_EQ(w.grad().to_float_vector(), (std::vector<float>{0.f, 0.f, 0.f}));
  w.zero_grad();  // a bound gradient is zeroed, not dropped
  EXPECT_TRUE(w.grad_is_bound());
  w.set_grad(Tensor::from_vector(std::vector<float>{5.f, 6.f, 7.f}, {3}));  // copies into the slot
  EXPECT_EQ(flat.grads().data<float>()[flat.offset(0) + 1], 6.f);
}

// The fused update over the flat buffers against today's per-parameter update (the same kernel
// family called once per parameter on separate tensors), bit for bit over several steps.
void check_fused_equals_per_tensor(double momentum, bool nesterov, double wd) {
  std::vector<Tensor> fused_params = make_params(3), ref_params = make_params(3);
  dp::train::SGD sgd(fused_params, {0.1, momentum, wd, nesterov});
  std::vector<Tensor> ref_bufs(ref_params.size());
  Tensor lr = Tensor::scalar(0.1);
  const dp::kernels::SgdHyper h{static_cast<float>(momentum), static_cast<float>(wd), nesterov};
  std::mt19937 gen(11);
  for (int step = 0; step < 4; ++step) {
    const double rate = 0.1 / (1 + step);  // a changing rate, through set_lr
    sgd.set_lr(rate);
    dp::kernels::fill_(lr, rate);
    std::vector<Tensor> grads = make_grads(ref_params, gen);
    for (size_t i = 0; i < ref_params.size(); ++i) {
      fused_params[i].set_grad(grads[i]);
      if (momentum != 0.0 && !ref_bufs[i].defined()) ref_bufs[i] = Tensor::empty_like(ref_params[i]);
      dp::kernels::sgd_step_(ref_params[i], grads[i], ref_bufs[i], lr, h, step == 0);
    }
    sgd.step();
    for (size_t i = 0; i < ref_params.size(); ++i) {
      ASSERT_TRUE(same_bits(fused_params[i], ref_params[i])) << "parameter " << i << " step " << step;
      if (momentum != 0.0) {
        ASSERT_TRUE(same_bits(sgd.momentum_buffers()[i], ref_bufs[i])) << i;
      }
    }
  }
}

TEST(FusedSgd, BitIdenticalToPerTensorUpdate) { check_fused_equals_per_tensor(0.9, false, 5e-4); }
TEST(FusedSgd, BitIdenticalToPerTensorUpdateNesterov) { check_fused_equals_per_tensor(0.9, true, 5e-4); }
TEST(FusedSgd, BitIdenticalToPerTensorUpdatePlain) { check_fused_equals_per_tensor(0.0, false, 1e-3); }

// The fused update against the formulas of kernels/sgd.h written out with std::fma.
TEST(FusedSgd, MatchesTheScalarFormula) {
  std::vector<Tensor> params = make_params(5);
  std::vector<std::vector<float>> w, buf(params.size());
  for (const Tensor& p : params) w.push_back(p.to_float_vector());
  dp::train::SGD sgd(params, {0.05, 0.9, 1e-3, false});
  std::mt19937 gen(2);
  for (int step = 0; step < 3; ++step) {
    std::vector<Tensor> grads = make_grads(params, gen);
    for (size_t i = 0; i < params.size(); ++i) {
      params[i].set_grad(grads[i]);
      const std::vector<float> g = grads[i].to_float_vector();
      buf[i].resize(g.size());
      for (size_t k = 0; k < g.size(); ++k) {
        const float d = std::fma(1e-3f, w[i][k], g[k]);
        buf[i][k] = step == 0 ? d : 0.9f * buf[i][k] + d;
        w[i][k] = std::fma(-0.05f, buf[i][k], w[i][k]);
      }
    }
    sgd.step();
  }
  for (size_t i = 0; i < params.size(); ++i) {
    const std::vector<float> got = params[i].to_float_vector();
    ASSERT_EQ(0, std::memcmp(got.data(), w[i].data(), got.size() * sizeof(float))) << "parameter " << i;
  }
}

TEST(FusedSgd, PlainSgdStepAllocatesNothing) {
  std::vector<Tensor> params = make_params(7);
  dp::train::SGD sgd(params, {0.1, 0.0, 5e-4, false});
  std::mt19937 gen(1);
  std::vector<Tensor> grads = make_grads(params, gen);
  for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(grads[i]);
  sgd.step();  // warm-up (the thread pool starts)
  const float* weights = sgd.flat().weights().data<float>();
  const uint64_t before = dp::cpu_allocation_count();
  for (int step = 0; step < 5; ++step) {
    sgd.set_lr(0.1 / (step + 1));
    sgd.step();
    sgd.zero_grad();
  }
  EXPECT_EQ(dp::cpu_allocation_count(), before) << "set_lr, step and zero_grad allocate no tensor memory";
  EXPECT_EQ(sgd.flat().weights().data<float>(), weights);
  EXPECT_FALSE(sgd.momentum_buffers()[0].defined());
}

TEST(FusedSgd, MomentumBuffersLoadBackBitForBit) {
  std::vector<Tensor> a_params = make_params(9), b_params = make_params(9);
  dp::train::SGD a(a_params, {0.1, 0.9, 5e-4, false}), b(b_params, {0.1, 0.9, 5e-4, false});
  std::mt19937 gen(4);
  std::vector<Tensor> grads = make_grads(a_params, gen);
  for (size_t i = 0; i < a_params.size(); ++i) {
    a_params[i].set_grad(grads[i]);
    b_params[i].set_grad(grads[i]);
  }
  a.step();
  b.load_momentum_buffers(std::vector<Tensor>(b_params.size()));  // "before the first step"
  EXPECT_FALSE(b.momentum_buffers()[0].defined());
  std::vector<Tensor> saved;
  for (const Tensor& m : a.momentum_buffers()) saved.push_back(m.clone());
  b.step();
  b.load_momentum_buffers(saved);
  for (size_t i = 0; i < saved.size(); ++i) EXPECT_TRUE(same_bits(b.momentum_buffers()[i], saved[i])) << i;
  a.step();
  b.step();
  for (size_t i = 0; i < a_params.size(); ++i) EXPECT_TRUE(same_bits(a_params[i], b_params[i])) << i;
  std::vector<Tensor> wrong(saved.size());
  wrong[0] = Tensor::zeros({2});
  EXPECT_THROW(b.load_momentum_buffers(wrong), dp::Error);
}

// CUDA: the one-launch update of the flat buffers equals the CPU's bit for bit, under a rate
// changed through set_lr (read on the device), with momentum and without.
TEST(FusedSgdCuda, BitIdenticalToCpu) {
  if (!dp::cuda_available()) {
    GTEST_SKIP() << "no CUDA device (or a build without CUDA): GPU validation pending";
  }
  for (double momentum : {0.0, 0.9}) {
    std::vector<Tensor> cpu_params = make_params(21), gpu_params;
    for (const Tensor& p : cpu_params) {
      Tensor g = p.to(dp::Device::cuda(0));
      g.set_requires_grad(true);
      gpu_params.push_back(g);
    }
    dp::train::SGD cpu_sgd(cpu_params, {0.1, momentum, 5e-4, false}), gpu_sgd(gpu_params, {0.1, momentum, 5e-4, false});
    std::mt19937 gen(8);
    for (int step = 0; step < 4; ++step) {
      cpu_sgd.set_lr(0.1 / (step + 1));
      gpu_sgd.set_lr(0.1 / (step + 1));
      std::vector<Tensor> grads = make_grads(cpu_params, gen);
      for (size_t i = 0; i < grads.size(); ++i) {
        cpu_params[i].set_grad(grads[i]);
        gpu_params[i].set_grad(grads[i].to(dp::Device::cuda(0)));
      }
      cpu_sgd.step();
      gpu_sgd.step();
    }
    EXPECT_TRUE(same_bits(cpu_sgd.flat().weights(), gpu_sgd.flat().weights())) << "momentum " << momentum;
    if (momentum != 0.0) {
      EXPECT_TRUE(same_bits(cpu_sgd.momentum_flat(), gpu_sgd.momentum_flat()));
    }
  }
}

TEST(FlatParameters, RejectsDuplicatesAndMixedDtypes) {
  Tensor a = Tensor::zeros({3});
  EXPECT_THROW(FlatParameters({a, a}), dp::Error);
  EXPECT_THROW(FlatParameters({a, Tensor::zeros({3}, dp::DType::Float64)}), dp::Error);
}

}  // namespace
