// The sparse_sgd family (kernels/sparse_sgd.h): the O(batch) SGD step of the data parameters,
// the clamp and the row scatter, CUDA bit for bit against the CPU. The optimiser built on them
// (train/sparse_sgd.h) is tested in tests/train/test_sparse_sgd.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/training_ops.h"
#include "tests/common/devices.h"

namespace {

using dp::Tensor;
using dp::testing::vec;

class SparseSgdCuda : public dp::testing::CudaTest {};

// Same float32 operations in the same order: CUDA SparseSGD (with duplicates, zero-sum rows and
// the clamp) must equal the CPU bit for bit.
TEST_F(SparseSgdCuda, BitIdenticalToCpuWithDuplicatesAndClamp) {
  for (int64_t B : {1, 256, 1000, 4096}) {
    const int64_t N = 3000;
    std::mt19937 gen(static_cast<unsigned>(B));
    std::normal_distribution<float> normal(0.f, 1.f);
    std::uniform_int_distribution<int64_t> row(0, B < 300 ? 40 : N - 1);  // small range: many duplicates
    const float lo = -2.9957323f, hi = 2.9957323f;
    Tensor theta = Tensor::full({N}, -6.9), buf = Tensor::zeros({N});
    dp::kernels::clamp_all_(theta, lo, hi);
    Tensor d_theta = theta.to(dp::Device::cuda()), d_buf = buf.to(dp::Device::cuda());
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
      dp::kernels::sparse_sgd_step_(d_theta, d_buf, vec(rows).to(dp::Device::cuda()), vec(grads).to(dp::Device::cuda()), h, step == 0);
    }
    const auto gt = d_theta.to_float_vector(), gb = d_buf.to_float_vector();
    ASSERT_EQ(0, std::memcmp(gt.data(), theta.data<float>(), N * sizeof(float))) << "B = " << B;
    ASSERT_EQ(0, std::memcmp(gb.data(), buf.data<float>(), N * sizeof(float))) << "B = " << B;
  }
}

TEST_F(SparseSgdCuda, ClampAllAndScatter) {
  const int64_t N = 100000, B = 512;
  std::vector<float> theta_host(N);
  std::mt19937 gen(1);
  std::normal_distribution<float> normal(0.f, 5.f);
  for (float& v : theta_host) v = normal(gen);
  Tensor theta = vec(theta_host), d_theta = theta.to(dp::Device::cuda());
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
  Tensor d_det = Tensor::zeros({N}, dp::DType::Float32, dp::Device::cuda()), d_atomic = Tensor::zeros({N}, dp::DType::Float32, dp::Device::cuda());
  dp::kernels::scatter_rows_add_(d_det, rows.to(dp::Device::cuda()), grads.to(dp::Device::cuda()), true);
  dp::kernels::scatter_rows_add_(d_atomic, rows.to(dp::Device::cuda()), grads.to(dp::Device::cuda()), false);
  EXPECT_EQ(d_det.to_float_vector(), dense.to_float_vector()) << "deterministic scatter sums in batch order, like the CPU";
  // Relative to max(|expected|, 1e-3 of the largest).
  EXPECT_TRUE(dp::testing::all_close(d_atomic, dense, dp::testing::Tolerance{1e-5, 1e-30, 1e-3}, "atomic scatter"));
}

}  // namespace
