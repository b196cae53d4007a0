// CUDA versions of the data-parameter kernels and the model SGD against the CPU versions.
// Skips (with a message) when the build has no CUDA or no device answers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "kernels/cpu/data_param_ce.h"
#include "kernels/cpu/sparse_sgd.h"
#include "train/sgd.h"

#ifdef DP_WITH_CUDA
#include <cuda_runtime_api.h>

#include "kernels/cuda/data_param_ce.h"
#include "kernels/cuda/sgd.h"
#include "kernels/cuda/sparse_sgd.h"
#endif

namespace {

#ifndef DP_WITH_CUDA
TEST(TrainCuda, Skipped) { GTEST_SKIP() << "built without CUDA (-Dcuda=disabled)"; }
#else

bool have_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;  // any error means "no device"
}

#define SKIP_WITHOUT_DEVICE() \
  if (!have_device()) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount failed or found none)"

template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(const std::vector<T>& host) : n(host.size()) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&ptr), std::max<size_t>(1, n) * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  explicit DeviceBuffer(size_t count) : DeviceBuffer(std::vector<T>(count, T(0))) {}
  ~DeviceBuffer() { cudaFree(ptr); }
  std::vector<T> host() const {
    std::vector<T> out(n);
    EXPECT_EQ(cudaMemcpy(out.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

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

  dp::kernels::DataParamCeArgs<float> a;
  a.batch = B;
  a.num_classes = C;
  a.num_instances = N;
  a.wd_class = cs.decay ? 1e-4 : 0.0;
  a.wd_inst = cs.decay ? 1e-3 : 0.0;
  std::vector<float> dl(B * C), gc(B), gi(B), sg(B), ds(B);
  a.logits = logits.data();
  a.labels = labels.data();
  a.indices = indices.data();
  a.theta_class = (cs.mode & 1) ? tc.data() : nullptr;
  a.theta_inst = (cs.mode & 2) ? ti.data() : nullptr;
  a.dlogits = dl.data();
  a.dtheta_class_rows = gc.data();
  a.dtheta_inst_rows = gi.data();
  a.sigma = sg.data();
  a.dsigma = ds.data();
  const double cpu_loss = dp::kernels::data_param_ce_cpu(a);

  DeviceBuffer<float> d_logits(logits), d_tc(tc), d_ti(ti), d_dl(B * C), d_gc(B), d_gi(B), d_sg(B),
      d_ds(B), d_loss(1), d_scratch(B);
  DeviceBuffer<int64_t> d_labels(labels), d_indices(indices);
  dp::kernels::DataParamCeArgs<float> g = a;
  g.logits = d_logits.ptr;
  g.labels = d_labels.ptr;
  g.indices = d_indices.ptr;
  g.theta_class = (cs.mode & 1) ? d_tc.ptr : nullptr;
  g.theta_inst = (cs.mode & 2) ? d_ti.ptr : nullptr;
  g.dlogits = d_dl.ptr;
  g.dtheta_class_rows = d_gc.ptr;
  g.dtheta_inst_rows = d_gi.ptr;
  g.sigma = d_sg.ptr;
  g.dsigma = d_ds.ptr;
  dp::kernels::data_param_ce_cuda(g, d_loss.ptr, d_scratch.ptr, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_NEAR(d_loss.host()[0], cpu_loss, 1e-5 * std::abs(cpu_loss));
  expect_near_rel(d_dl.host(), dl, 1e-4, "dlogits");
  expect_near_rel(d_sg.host(), sg, 1e-6, "sigma");
  expect_near_rel(d_ds.host(), ds, 1e-3, "dsigma");
  if (cs.mode & 1) expect_near_rel(d_gc.host(), gc, 1e-3, "dtheta_class_rows");
  if (cs.mode & 2) expect_near_rel(d_gi.host(), gi, 1e-3, "dtheta_inst_rows");
  if ((cs.mode & 2) && !cs.decay) {
    EXPECT_EQ(d_gi.host()[0], 0.0f) << "underflow row must be exactly 0";
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
    std::vector<float> theta(N, -6.9f), buf(N, 0.f);
    dp::kernels::clamp_all_cpu(theta.data(), N, -2.9957323f, 2.9957323f);
    DeviceBuffer<float> d_theta(theta), d_buf(buf);
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
      DeviceBuffer<int64_t> d_rows(rows);
      DeviceBuffer<float> d_grads(grads);
      dp::kernels::SparseSgdArgs a;
      a.param = theta.data();
      a.momentum_buf = buf.data();
      a.num_rows = N;
      a.rows = rows.data();
      a.grads = grads.data();
      a.n = B;
      a.lr = 0.8f;
      a.first_step = step == 0;
      std::vector<int64_t> updated(B);
      a.updated_rows = updated.data();
      const int64_t count = dp::kernels::sparse_sgd_step_cpu(a);
      dp::kernels::clamp_rows_cpu(theta.data(), updated.data(), count, -2.9957323f, 2.9957323f);
      dp::kernels::SparseSgdArgs g = a;
      g.param = d_theta.ptr;
      g.momentum_buf = d_buf.ptr;
      g.rows = d_rows.ptr;
      g.grads = d_grads.ptr;
      g.updated_rows = nullptr;
      dp::kernels::sparse_sgd_step_cuda(g, true, -2.9957323f, 2.9957323f, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    }
    const auto gt = d_theta.host(), gb = d_buf.host();
    ASSERT_EQ(0, std::memcmp(gt.data(), theta.data(), N * sizeof(float))) << "B = " << B;
    ASSERT_EQ(0, std::memcmp(gb.data(), buf.data(), N * sizeof(float))) << "B = " << B;
  }
}

TEST(SparseSgdCuda, ClampAllAndScatter) {
  SKIP_WITHOUT_DEVICE();
  const int64_t N = 100000, B = 512;
  std::vector<float> theta(N);
  std::mt19937 gen(1);
  std::normal_distribution<float> normal(0.f, 5.f);
  for (float& v : theta) v = normal(gen);
  DeviceBuffer<float> d_theta(theta);
  dp::kernels::clamp_all_cpu(theta.data(), N, -2.9957323f, 2.9957323f);
  dp::kernels::clamp_all_cuda(d_theta.ptr, N, -2.9957323f, 2.9957323f, nullptr);
  ASSERT_EQ(d_theta.host(), theta);

  std::vector<int64_t> rows(B);
  std::vector<float> grads(B), dense(N, 0.f);
  std::uniform_int_distribution<int64_t> row(0, 99);
  for (int64_t b = 0; b < B; ++b) {
    rows[b] = row(gen);
    grads[b] = normal(gen);
  }
  dp::kernels::scatter_rows_to_dense_cpu(rows.data(), grads.data(), B, dense.data(), N);
  DeviceBuffer<int64_t> d_rows(rows);
  DeviceBuffer<float> d_grads(grads), d_det(N), d_atomic(N);
  dp::kernels::scatter_rows_to_dense_cuda(d_rows.ptr, d_grads.ptr, B, d_det.ptr, N, true, nullptr);
  dp::kernels::scatter_rows_to_dense_cuda(d_rows.ptr, d_grads.ptr, B, d_atomic.ptr, N, false, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(d_det.host(), dense) << "deterministic scatter sums in batch order, like the CPU";
  expect_near_rel(d_atomic.host(), dense, 1e-5, "atomic scatter");
}

TEST(SgdCuda, MultiTensorBitIdenticalToCpu) {
  SKIP_WITHOUT_DEVICE();
  for (bool nesterov : {false, true}) {
    const int count = 70;  // more than one table: two launches
    std::mt19937 gen(9);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<std::vector<float>> w(count), g(count), buf(count);
    std::vector<std::unique_ptr<DeviceBuffer<float>>> dw, dg, db;
    for (int k = 0; k < count; ++k) {
      const int64_t n = 1 + (k * 977) % 5000;
      w[k].resize(n);
      g[k].resize(n);
      buf[k].assign(n, 0.f);
      for (float& v : w[k]) v = normal(gen);
      dw.push_back(std::make_unique<DeviceBuffer<float>>(w[k]));
      db.push_back(std::make_unique<DeviceBuffer<float>>(buf[k]));
    }
    for (int step = 0; step < 3; ++step) {
      std::vector<dp::train::SgdSpan> spans;
      dg.clear();
      for (int k = 0; k < count; ++k) {
        for (float& v : g[k]) v = normal(gen);
        dg.push_back(std::make_unique<DeviceBuffer<float>>(g[k]));
        spans.push_back({w[k].data(), g[k].data(), buf[k].data(), static_cast<int64_t>(w[k].size()), step == 0});
      }
      dp::train::sgd_step_cpu(spans, 0.1f, 0.9f, 5e-4f, nesterov);
      for (int start = 0; start < count; start += dp::kernels::kSgdMaxTensors) {
        dp::kernels::SgdTensorTable t;
        for (int k = start; k < count && t.count < dp::kernels::kSgdMaxTensors; ++k, ++t.count) {
          t.w[t.count] = dw[k]->ptr;
          t.g[t.count] = dg[k]->ptr;
          t.buf[t.count] = db[k]->ptr;
          t.n[t.count] = static_cast<int64_t>(w[k].size());
          t.first[t.count] = step == 0;
        }
        dp::kernels::sgd_step_cuda(t, 0.1f, 0.9f, 5e-4f, nesterov, nullptr);
      }
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    }
    for (int k = 0; k < count; ++k) {
      ASSERT_EQ(dw[k]->host(), w[k]) << "tensor " << k << " nesterov " << nesterov;
      ASSERT_EQ(db[k]->host(), buf[k]) << "tensor " << k << " nesterov " << nesterov;
    }
  }
}
#endif

}  // namespace
