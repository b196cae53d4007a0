// Synchronised BatchNorm against plain BatchNorm of the whole batch. On 2 ranks each takes its
// half of one batch (the second rank a different share than the first when the sizes are
// uneven); every rank computes the single-process reference on the whole batch locally.
// Alone, the same comparison runs with a one-rank "sum" (the identity).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/autograd.h"
#include "dist/communicator.h"
#include "dist/process_group.h"
#include "engine/rng.h"
#include "kernels/ops.h"
#include "kernels/sync_batch_norm.h"

namespace dp {
namespace {

std::vector<double> values(int64_t n, uint64_t seed, double offset) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = offset + std::sin(0.37 * static_cast<double>(i) + static_cast<double>(seed)) *
                                                      (1.0 + 0.5 * std::cos(0.011 * static_cast<double>(i)));
  return v;
}

double max_rel(const std::vector<double>& a, const std::vector<double>& b) {
  double scale = 1e-12, diff = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(b[i]));
    diff = std::max(diff, std::abs(a[i] - b[i]));
  }
  return diff / scale;
}

// rows [begin, begin+count) of an [N, ...] host vector
std::vector<double> rows(const std::vector<double>& v, int64_t per_row, int64_t begin, int64_t count) {
  return std::vector<double>(v.begin() + begin * per_row, v.begin() + (begin + count) * per_row);
}

void compare(bool relu, DType dtype) {
  auto comm = dist::make_communicator(Device::cpu(), 60.0);
  const int world = comm->world_size(), rank = comm->rank();
  const int64_t n = 7 * world + 1, c = 3, h = 5, w = 4, per_row = c * h * w;
  // Rank r takes rows [begin_r, begin_r + count_r): uneven on purpose (the last rank one more).
  std::vector<int64_t> counts(static_cast<size_t>(world), 7);
  counts.back() += 1;
  int64_t begin = 0;
  for (int r = 0; r < rank; ++r) begin += counts[r];
  const int64_t mine = counts[rank];
  const std::vector<double> xs = values(n * per_row, 3, 2.5), dys = values(n * per_row, 11, 0.1);
  const std::vector<double> gs = {1.5, 0.75, -1.25}, bs = {0.1, -0.2, 0.3};

  // Reference: one process, the whole batch, loss = Σ y·dy / n (a mean over the batch).
  Tensor x_all = Tensor::from_vector(xs, {n, c, h, w}).to(dtype).set_requires_grad(true);
  Tensor g_all = Tensor::from_vector(gs, {c}).to(dtype).set_requires_grad(true);
  Tensor b_all = Tensor::from_vector(bs, {c}).to(dtype).set_requires_grad(true);
  Tensor rm_all = Tensor::zeros({c}, dtype), rv_all = Tensor::ones({c}, dtype);
  Tensor y_all = relu ? kernels::batch_norm_relu(x_all, g_all, b_all, rm_all, rv_all, true, 0.1, 1e-5)
                      : kernels::batch_norm(x_all, g_all, b_all, rm_all, rv_all, true, 0.1, 1e-5);
  y_all.backward(Tensor::from_vector(dys, {n, c, h, w}).to(dtype));

  // This rank: its rows, its local loss Σ y·dy / mine (so its upstream gradient is n/mine times larger).
  kernels::BatchNormSync sync;
  sync.all_reduce_sum = [&](Tensor& t) { comm->all_reduce(t); };
  sync.local_weight = static_cast<double>(mine) / static_cast<double>(n);
  Tensor x = Tensor::from_vector(rows(xs, per_row, begin, mine), {mine, c, h, w}).to(dtype).set_requires_grad(true);
  Tensor g = Tensor::from_vector(gs, {c}).to(dtype).set_requires_grad(true);
  Tensor b = Tensor::from_vector(bs, {c}).to(dtype).set_requires_grad(true);
  Tensor rm = Tensor::zeros({c}, dtype), rv = Tensor::ones({c}, dtype);
  Tensor y = kernels::sync_batch_norm(x, g, b, rm, rv, 0.1, 1e-5, relu, sync);
  std::vector<double> dy_local = rows(dys, per_row, begin, mine);
  for (double& v : dy_local) v *= static_cast<double>(n) / static_cast<double>(mine);
  y.backward(Tensor::from_vector(dy_local, {mine, c, h, w}).to(dtype));

  const double tol = dtype == DType::Float64 ? 1e-10 : 2e-5;
  EXPECT_LT(max_rel(y.to_double_vector(), rows(y_all.to_double_vector(), per_row, begin, mine)), tol);
  EXPECT_LT(max_rel(rm.to_double_vector(), rm_all.to_double_vector()), tol);
  EXPECT_LT(max_rel(rv.to_double_vector(), rv_all.to_double_vector()), tol);
  // dx of this rank's rows, scaled back to the single process's loss.
  std::vector<double> dx = x.grad().to_double_vector();
  for (double& v : dx) v *= sync.local_weight;
  EXPECT_LT(max_rel(dx, rows(x_all.grad().to_double_vector(), per_row, begin, mine)), tol);
  // dγ, dβ: each rank's share-weighted own gradient, summed (what the gradient all-reduce does).
  Tensor dg = g.grad().to(DType::Float64).clone(), db = b.grad().to(DType::Float64).clone();
  kernels::fill_(dg, 0.0);
  {
    NoGradGuard no_grad;
    kernels::add_(dg, g.grad().to(DType::Float64), sync.local_weight);
    kernels::fill_(db, 0.0);
    kernels::add_(db, b.grad().to(DType::Float64), sync.local_weight);
  }
  comm->all_reduce(dg);
  comm->all_reduce(db);
  EXPECT_LT(max_rel(dg.to_double_vector(), g_all.grad().to_double_vector()), tol);
  EXPECT_LT(max_rel(db.to_double_vector(), b_all.grad().to_double_vector()), tol);
}

TEST(SyncBatchNorm, EqualsBatchNormOfTheWholeBatchFloat64) { compare(false, DType::Float64); }

TEST(SyncBatchNorm, ChannelSumsThatCancelAcrossRanksKeepTheirDigitsFloat32) {
  // dy ≈ +100 on rank 0's rows and ≈ -100 on the others' (each rank's Σdy ≈ ±16000, the total
  // ≈ 1): float32 partial sums would carry ~1e-3 absolute rounding each, i.e. dβ and dx's mean
  // term off by ~1e-3 relative. Sums kept in float64 over the ranks give one process's dβ, dγ and
  // dx to float32 rounding.
  auto comm = dist::make_communicator(Device::cpu(), 60.0);
  const int world = comm->world_size(), rank = comm->rank();
  if (world < 2) GTEST_SKIP() << "needs 2 ranks: run under mpirun -np 2 (meson test dist_sync_batch_norm_2ranks)";
  const int64_t per = 8, n = per * world, c = 3, h = 5, w = 4, per_row = c * h * w;
  std::vector<double> xs = values(n * per_row, 5, 0.5), dys = values(n * per_row, 13, 0.0);
  for (int64_t i = 0; i < n * per_row; ++i) dys[i] = (i < per * per_row ? 100.0 : -100.0 / (world - 1)) + 0.05 * dys[i];
  Tensor x_all = Tensor::from_vector(xs, {n, c, h, w}).to(DType::Float32).set_requires_grad(true);
  Tensor g_all = Tensor::ones({c}, DType::Float32).set_requires_grad(true);
  Tensor b_all = Tensor::zeros({c}, DType::Float32).set_requires_grad(true);
  kernels::batch_norm(x_all, g_all, b_all, Tensor(), Tensor(), true, 0.1, 1e-5)
      .backward(Tensor::from_vector(dys, {n, c, h, w}).to(DType::Float32));

  kernels::BatchNormSync sync;
  sync.all_reduce_sum = [&](Tensor& t) { comm->all_reduce(t); };
  sync.local_weight = 1.0 / world;
  Tensor x = Tensor::from_vector(rows(xs, per_row, rank * per, per), {per, c, h, w}).to(DType::Float32).set_requires_grad(true);
  Tensor g = Tensor::ones({c}, DType::Float32).set_requires_grad(true);
  Tensor b = Tensor::zeros({c}, DType::Float32).set_requires_grad(true);
  std::vector<double> dy_local = rows(dys, per_row, rank * per, per);
  for (double& v : dy_local) v *= world;  // this rank's loss is its local mean
  kernels::sync_batch_norm(x, g, b, Tensor(), Tensor(), 0.1, 1e-5, false, sync)
      .backward(Tensor::from_vector(dy_local, {per, c, h, w}).to(DType::Float32));
  // dγ, dβ as the job's gradient all-reduce leaves them (the float32 average over the ranks),
  // per channel (not relative to the largest channel): each channel's sum cancels differently.
  Tensor db_t = b.grad().clone(), dg_t = g.grad().clone();
  comm->all_reduce(db_t, dist::ReduceOp::Avg);
  comm->all_reduce(dg_t, dist::ReduceOp::Avg);
  const std::vector<double> want_db = b_all.grad().to_double_vector(), want_dg = g_all.grad().to_double_vector();
  const std::vector<double> db = db_t.to_double_vector(), dg = dg_t.to_double_vector();
  for (int64_t k = 0; k < c; ++k) {
    EXPECT_LT(std::abs(db[k] - want_db[k]), 1e-6 * std::abs(want_db[k])) << "dβ[" << k << "] " << db[k] << " vs " << want_db[k];
    EXPECT_LT(std::abs(dg[k] - want_dg[k]), 1e-6 * std::abs(want_dg[k])) << "dγ[" << k << "] " << dg[k] << " vs " << want_dg[k];
  }
  std::vector<double> dx = x.grad().to_double_vector();
  for (double& v : dx) v /= world;
  EXPECT_LT(max_rel(dx, rows(x_all.grad().to_double_vector(), per_row, rank * per, per)), 1e-6);
}
TEST(SyncBatchNorm, FusedReluFloat32) { compare(true, DType::Float32); }

}  // namespace
}  // namespace dp
