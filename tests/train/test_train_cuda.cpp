// CUDA versions of the data-parameter kernel families and the model SGD against the CPU
// versions, through the same kernels:: wrappers the optimisers call. Skips (with a message) when
// the build has no CUDA or no device answers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/device.h"
#include "engine/tensor.h"
#include "kernels/training_ops.h"

namespace {

using dp::Device;
using dp::Tensor;

#define SKIP_WITHOUT_DEVICE() \
  if (!dp::cuda_available()) { GTEST_SKIP() << "no CUDA device (or a build without CUDA): GPU validation pending"; }

const Device kGpu = Device::cuda(0);

template <class T>
Tensor vec(const std::vector<T>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
}

void expect_near_rel(const std::vector<float>& got, const std::vector<float>& want, double rel,
                     const char* what) {
  ASSERT_EQ(got.size(), want.size());
  double scale = 0;
  for (float v : want) scale = std::max(scale, static_cast<double>(std::abs(v)));
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], rel * std::max<double>(std::abs(want[i]), 1e-3 * scale) + 1e-30)
        << what << "[" << i << "]";
}

struct CeCase {
  int mode;  // 1 class, 2 instance, 3 joint, 0 none
  int64_t B, C;
  bool decay;
};

class DataParamCeCuda : public ::testing::TestWithParam<CeCase> {};

TEST_P(DataParamCeCuda, MatchesCpu) {
  SKIP_WITHOUT_DEVICE();
  const CeCase cs = GetParam();
  const int64_t B = cs.B, C = cs.C, N = 5000;
  std::mt19937 gen(42);
  std::normal_distribution<float> normal(0.f, 4.f);
  std::uniform_real_distribution<float> uni(std::log(0.05f), std::log(20.f));
  std::uniform_int_distribution<int64_t> cls(0, C - 1), inst(0, N - 1);
  std::vector<float> logits(B * C), tc(C), ti(N);
  std::vector<int64_t> labels(B), indices(B);
  for (float& v : logits) v = normal(gen);
  for (float& v : tc) v = uni(gen);
  for (float& v : ti) v = uni(gen);
  for (int64_t b = 0; b < B; ++b) {
    labels[b] = cls(gen);
    indices[b] = inst(gen);
  }
  logits[0 * C + labels[0]] = 3000.f;  // a row whose σ gradient underflows to zero

  dp::kernels::DataParamCeTensors a;
  a.logits = Tensor::from_vector(logits, {B, C});
  a.labels = vec(labels);
  a.indices = vec(indices);
  if (cs.mode & 1) a.theta_class = vec(tc);
  if (cs.mode & 2) a.theta_inst = vec(ti);
  a.wd_class = cs.decay ? 1e-4 : 0.0;
  a.wd_inst = cs.decay ? 1e-3 : 0.0;
  // The same problem with its inputs on `device`, every output allocated there.
  auto on = [&](Device device) {
    dp::kernels::DataParamCeTensors t;
    t.logits = a.logits.to(device);
    t.labels = a.labels.to(device);
    t.indices = a.indices.to(device);
    if (a.theta_class.defined()) t.theta_class = a.theta_class.to(device);
    if (a.theta_inst.defined()) t.theta_inst = a.theta_inst.to(device);
    t.wd_class = a.wd_class;
    t.wd_inst = a.wd_inst;
    t.loss = Tensor::empty({}, dp::DType::Float32, device);
    t.dlogits = Tensor::empty({B, C}, dp::DType::Float32, device);
    for (Tensor* out : {&t.sigma, &t.dsigma, &t.dtheta_class_rows, &t.dtheta_inst_rows})
      *out = Tensor::empty({B}, dp::DType::Float32, device);
    if (!t.theta_class.defined()) t.dtheta_class_rows = Tensor();
    if (!t.theta_inst.defined()) t.dtheta_inst_rows = Tensor();
    dp::kernels::data_param_ce(t);
    return t;
  };
  const dp::kernels::DataParamCeTensors c = on(Device::cpu()), g = on(kGpu);
  const double cpu_loss = c.loss.item();
  EXPECT_NEAR(g.loss.item(), cpu_loss, 1e-5 * std::abs(cpu_loss));
  expect_near_rel(g.dlogits.to_float_vector(), c.dlogits.to_float_vector(), 1e-4, "dlogits");
  expect_near_rel(g.sigma.to_float_vector(), c.sigma.to_float_vector(), 1e-6, "sigma");
  expect_near_rel(g.dsigma.to_float_vector(), c.dsigma.to_float_vector(), 1e-3, "dsigma");
  if (cs.mode & 1)
    expect_near_rel(g.dtheta_class_rows.to_float_vector(), c.dtheta_class_rows.to_float_vector(), 1e-3,
                    "dtheta_class_rows");
  if (cs.mode & 2)
    expect_near_rel(g.dtheta_inst_rows.to_float_vector(), c.dtheta_inst_rows.to_float_vector(), 1e-3,
                    "dtheta_inst_rows");
  if ((cs.mode & 2) && !cs.decay) {
    EXPECT_EQ(g.dtheta_inst_rows.to_float_vector()[0], 0.0f) << "underflow row must be exactly 0";
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, DataParamCeCuda,
                         ::testing::Values(CeCase{1, 256, 1000, true}, CeCase{2, 256, 1000, false},
                                           CeCase{3, 256, 1000, true}, CeCase{3, 128, 100, false},
                                           CeCase{2, 128, 10, true}, CeCase{0, 64, 10, false},
                                           CeCase{3, 7, 37, true}));

// Same float32 operations in the same order: CUDA SparseSGD (with duplicates, zero-sum rows and
// the clamp) must equal the CPU bit for bit.
TEST(SparseSgdCuda, BitIdenticalToCpuWithDuplicatesAndClamp) {
  SKIP_WITHOUT_DEVICE();
  for (int64_t B : {1, 256, 1000, 4096}) {
    const int64_t N = 3000;
    std::mt19937 gen(static_cast<unsigned>(B));
    std::normal_distribution<float> normal(0.f, 1.f);
    std::uniform_int_distribution<int64_t> row(0, B < 300 ? 40 : N - 1);  // small range: many duplicates
    const float lo = -2.9957323f, hi = 2.9957323f;
    Tensor theta = Tensor::full({N}, -6.9), buf = Tensor::zeros({N});
    dp::kernels::clamp_all_(theta, lo, hi);
    Tensor d_theta = theta.to(kGpu), d_buf = buf.to(kGpu);
    const dp::kernels::SparseSgdHyper h{0.8f, 0.9f, dp::kernels::SparsePresence::NonZeroGrad, true, lo, hi};
    for (int step = 0; step < 15; ++step) {
      std::vector<int64_t> rows(B);
      std::vector<float> grads(B);
      for (int64_t b = 0; b < B; ++b) {
        rows[b] = row(gen);
        grads[b] = (b % 11 == 5) ? 0.f : 3.f * normal(gen);
      }
      if (B >= 4) {  // a duplicate pair that cancels exactly: absent under the default rule
        rows[1] = rows[2] = N - 1;
        grads[1] = 0.75f;
        grads[2] = -0.75f;
      }
      dp::kernels::sparse_sgd_step_(theta, buf, vec(rows), vec(grads), h, step == 0);
      dp::kernels::sparse_sgd_step_(d_theta, d_buf, vec(rows).to(kGpu), vec(grads).to(kGpu), h, step == 0);
    }
    const auto gt = d_theta.to_float_vector(), gb = d_buf.to_float_vector();
    ASSERT_EQ(0, std::memcmp(gt.data(), theta.data<float>(), N * sizeof(float))) << "B = " << B;
    ASSERT_EQ(0, std::memcmp(gb.data(), buf.data<float>(), N * sizeof(float))) << "B = " << B;
  }
}

TEST(SparseSgdCuda, ClampAllAndScatter) {
  SKIP_WITHOUT_DEVICE();
  const int64_t N = 100000, B = 512;
  std::vector<float> theta_host(N);
  std::mt19937 gen(1);
  std::normal_distribution<float> normal(0.f, 5.f);
  for (float& v : theta_host) v = normal(gen);
  Tensor theta = vec(theta_host), d_theta = theta.to(kGpu);
  dp::kernels::clamp_all_(theta, -2.9957323f, 2.9957323f);
  dp::kernels::clamp_all_(d_theta, -2.9957323f, 2.9957323f);
  ASSERT_EQ(d_theta.to_float_vector(), theta.to_float_vector());

  std::vector<int64_t> rows_host(B);
  std::vector<float> grads_host(B);
  std::uniform_int_distribution<int64_t> row(0, 99);
  for (int64_t b = 0; b < B; ++b) {
    rows_host[b] = row(gen);
    grads_host[b] = normal(gen);
  }
  Tensor rows = vec(rows_host), grads = vec(grads_host), dense = Tensor::zeros({N});
  dp::kernels::scatter_rows_add_(dense, rows, grads);
  Tensor d_det = Tensor::zeros({N}, dp::DType::Float32, kGpu), d_atomic = Tensor::zeros({N}, dp::DType::Float32, kGpu);
  dp::kernels::scatter_rows_add_(d_det, rows.to(kGpu), grads.to(kGpu), true);
  dp::kernels::scatter_rows_add_(d_atomic, rows.to(kGpu), grads.to(kGpu), false);
  EXPECT_EQ(d_det.to_float_vector(), dense.to_float_vector()) << "deterministic scatter sums in batch order, like the CPU";
  expect_near_rel(d_atomic.to_float_vector(), dense.to_float_vector(), 1e-5, "atomic scatter");
}

// The update of one buffer (a parameter, or a whole model's flat buffer), with and without
// momentum, bit for bit; the rate is read from a device scalar.
TEST(SgdCuda, BitIdenticalToCpu) {
  SKIP_WITHOUT_DEVICE();
  for (float momentum : {0.0f, 0.9f}) {
    for (bool nesterov : {false, true}) {
      if (nesterov && momentum == 0.0f) continue;
      const int64_t n = 1000003;  // not a multiple of any block or vector width
      std::mt19937 gen(9);
      std::normal_distribution<float> normal(0.f, 1.f);
      std::vector<float> w_host(n);
      for (float& v : w_host) v = normal(gen);
      Tensor w = vec(w_host), d_w = w.to(kGpu);
      Tensor buf = momentum != 0.0f ? Tensor::zeros({n}) : Tensor();
      Tensor d_buf = momentum != 0.0f ? buf.to(kGpu) : Tensor();
      Tensor lr = Tensor::scalar(0.1), d_lr = lr.to(kGpu);
      const dp::kernels::SgdHyper h{momentum, 5e-4f, nesterov};
      for (int step = 0; step < 3; ++step) {
        std::vector<float> g_host(n);
        for (float& v : g_host) v = normal(gen);
        Tensor g = vec(g_host);
        dp::kernels::sgd_step_(w, g, buf, lr, h, step == 0);
        dp::kernels::sgd_step_(d_w, g.to(kGpu), d_buf, d_lr, h, step == 0);
      }
      ASSERT_EQ(d_w.to_float_vector(), w.to_float_vector()) << "momentum " << momentum << " nesterov " << nesterov;
      if (momentum != 0.0f) {
        ASSERT_EQ(d_buf.to_float_vector(), buf.to_float_vector());
      }
    }
  }
}

}  // namespace
