#include "app/inspect/detection.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace dp::app::inspect {

std::vector<int64_t> rank_descending(const std::vector<float>& scores) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  return order;
}

double precision_at_k(const std::vector<float>& scores, const std::vector<uint8_t>& corrupted, int64_t k) {
  std::vector<int64_t> order = rank_descending(scores);
  k = std::min<int64_t>(k, static_cast<int64_t>(order.size()));
  if (k <= 0) return std::numeric_limits<double>::quiet_NaN();
  int64_t hits = 0;
  for (int64_t i = 0; i < k; ++i) hits += corrupted[order[i]] ? 1 : 0;
  return static_cast<double>(hits) / static_cast<double>(k);
}

double roc_auc(const std::vector<float>& scores, const std::vector<uint8_t>& corrupted) {
  // Rank-sum form: AUC = (R_pos - n_pos(n_pos+1)/2) / (n_pos n_neg), with average ranks for ties.
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] < scores[b]; });
  double rank_sum = 0.0;
  int64_t n_pos = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    double average_rank = 0.5 * static_cast<double>(i + 1 + j);  // ranks i+1 .. j
    for (size_t t = i; t < j; ++t)
      if (corrupted[order[t]]) {
        rank_sum += average_rank;
        ++n_pos;
      }
    i = j;
  }
  int64_t n_neg = static_cast<int64_t>(scores.size()) - n_pos;
  if (n_pos == 0 || n_neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - 0.5 * static_cast<double>(n_pos) * static_cast<double>(n_pos + 1)) /
         (static_cast<double>(n_pos) * static_cast<double>(n_neg));
}

}  // namespace dp::app::inspect
