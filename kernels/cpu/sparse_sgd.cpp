#include "kernels/cpu/sparse_sgd.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "engine/error.h"

namespace dp::kernels {

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

int64_t sparse_sgd_step_cpu(const SparseSgdArgs& a) {
  DP_CHECK(a.param != nullptr && a.momentum_buf != nullptr, "sparse_sgd: parameter and momentum buffer are required",
           "construct the optimiser with the data-parameter tensor");
  if (a.n == 0) return 0;
  // (row, batch position) pairs sorted by row then position: each segment is one unique row
  // whose gradients are summed in batch order.
  std::vector<std::pair<int64_t, int64_t>> order(static_cast<size_t>(a.n));
  for (int64_t b = 0; b < a.n; ++b) {
    const int64_t r = a.rows[b];
    DP_CHECK(r >= 0 && r < a.num_rows,
             fmt::format("sparse_sgd: row {} at batch position {} is outside [0, {})", r, b, a.num_rows),
             "the batch's labels/dataset indices must index the data-parameter tensor");
    order[b] = {r, b};
  }
  std::sort(order.begin(), order.end());
  int64_t updated = 0;
  for (size_t s = 0; s < order.size();) {
    const int64_t row = order[s].first;
    float g = 0.0f;  // like the dense reference: zero-initialised, then += in batch order
    size_t e = s;
    for (; e < order.size() && order[e].first == row; ++e) g += a.grads[order[e].second];
    s = e;
    if (a.presence == SparsePresence::NonZeroGrad && g == 0.0f) continue;
    update_row(a.param[row], a.momentum_buf[row], g, a.lr, a.momentum, a.first_step);
    if (a.updated_rows != nullptr) a.updated_rows[updated] = row;
    ++updated;
  }
  return updated;
}

void sparse_sgd_step_dense_cpu(float* param, float* momentum_buf, const float* dense_grad,
                               int64_t num_rows, float lr, float momentum, bool first_step) {
  for (int64_t r = 0; r < num_rows; ++r) {
    const float g = dense_grad[r];
    if (g == 0.0f) continue;
    update_row(param[r], momentum_buf[r], g, lr, momentum, first_step);
  }
}

void clamp_all_cpu(float* param, int64_t num_rows, float lo, float hi) {
  for (int64_t r = 0; r < num_rows; ++r) param[r] = clamp_value(param[r], lo, hi);
}

void clamp_rows_cpu(float* param, const int64_t* rows, int64_t n, float lo, float hi) {
  for (int64_t b = 0; b < n; ++b) param[rows[b]] = clamp_value(param[rows[b]], lo, hi);
}

}  // namespace dp::kernels
