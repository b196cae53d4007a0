// CPU SparseSGD, clamp and row scatter (contract: kernels/sparse_sgd.h). Compiled with
// -ffp-contract=off (kernels/meson.build): the rounding order below is the contract.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "kernels/sparse_sgd.h"

namespace dp::kernels::cpu {

namespace {

inline float clamp_value(float v, float lo, float hi) {
  // torch.clamp semantics: NaN propagates; otherwise min(max(v, lo), hi).
  if (std::isnan(v)) return v;
  return v < lo ? lo : (v > hi ? hi : v);
}

// One row's update; the single place the float32 rounding order is written down.
inline void update_row(float& theta, float& buf, float g, float lr, float momentum, bool first) {
  buf = first ? g : momentum * buf + g;
  theta = theta - lr * buf;
}

}  // namespace

void sparse_sgd_step(Tensor& theta, Tensor& momentum_buf, const Tensor& rows_t, const Tensor& grads_t,
                     const Tensor& lr_t, const SparseSgdHyper& h, bool first_step,
                     std::vector<int64_t>* updated_rows) {
  if (updated_rows != nullptr) updated_rows->clear();
  const int64_t n = rows_t.numel(), num_rows = theta.numel();
  if (n == 0) return;
  float* param = theta.data<float>();
  float* buf = momentum_buf.data<float>();
  const int64_t* rows = rows_t.data<int64_t>();
  const float* grads = grads_t.data<float>();
  const float lr = *lr_t.data<float>();
  // (row, batch position) pairs sorted by row then position: each segment is one unique row
  // whose gradients are summed in batch order.
  std::vector<std::pair<int64_t, int64_t>> order(static_cast<size_t>(n));
  for (int64_t b = 0; b < n; ++b) {
    const int64_t r = rows[b];
    DP_CHECK(r >= 0 && r < num_rows,
             fmt::format("sparse_sgd: row {} at batch position {} is outside [0, {})", r, b, num_rows),
             "the batch's labels/dataset indices must index the data-parameter tensor");
    order[b] = {r, b};
  }
  std::sort(order.begin(), order.end());
  for (size_t s = 0; s < order.size();) {
    const int64_t row = order[s].first;
    float g = 0.0f;  // like the dense reference: zero-initialised, then += in batch order
    size_t e = s;
    for (; e < order.size() && order[e].first == row; ++e) g += grads[order[e].second];
    s = e;
    if (h.presence == SparsePresence::NonZeroGrad && g == 0.0f) continue;
    update_row(param[row], buf[row], g, lr, h.momentum, first_step);
    if (h.clamp) param[row] = clamp_value(param[row], h.clamp_lo, h.clamp_hi);
    if (updated_rows != nullptr) updated_rows->push_back(row);
  }
}

void sparse_sgd_step_dense(Tensor& theta, Tensor& momentum_buf, const Tensor& dense_grad, float lr,
                           float momentum, bool first_step) {
  float* param = theta.data<float>();
  float* buf = momentum_buf.data<float>();
  const float* grad = dense_grad.data<float>();
  for (int64_t r = 0; r < theta.numel(); ++r) {
    const float g = grad[r];
    if (g == 0.0f) continue;
    update_row(param[r], buf[r], g, lr, momentum, first_step);
  }
}

void clamp_all(Tensor& theta, float lo, float hi) {
  float* p = theta.data<float>();
  for (int64_t r = 0; r < theta.numel(); ++r) p[r] = clamp_value(p[r], lo, hi);
}

void scatter_rows_add(Tensor& dense_t, const Tensor& rows_t, const Tensor& grads_t, bool /*deterministic*/) {
  float* dense = dense_t.data<float>();
  const int64_t* rows = rows_t.data<int64_t>();
  const float* grads = grads_t.data<float>();
  const int64_t size = dense_t.numel();
  for (int64_t b = 0; b < rows_t.numel(); ++b) {
    DP_CHECK(rows[b] >= 0 && rows[b] < size,
             fmt::format("scatter_rows_add: row {} at position {} is outside [0, {})", rows[b], b, size),
             "rows must index the parameter tensor");
    dense[rows[b]] += grads[b];
  }
}

}  // namespace dp::kernels::cpu
