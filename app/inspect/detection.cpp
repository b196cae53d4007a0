#include "app/inspect/detection.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace dp::app::inspect {

namespace {

// NaN (nothing measured) as the lowest score: sorting needs a total order.
std::vector<float> comparable(const std::vector<float>& scores) {
  std::vector<float> s = scores;
  for (float& v : s)
    if (std::isnan(v)) v = -std::numeric_limits<float>::infinity();
  return s;
}

// Per distinct score, from the highest down: how many samples and positives score at least that.
struct Threshold {
  int64_t flagged = 0, hits = 0;
};

std::vector<Threshold> thresholds(const std::vector<float>& raw, const std::vector<uint8_t>& positive) {
  const std::vector<float> scores = comparable(raw);
  const std::vector<int64_t> order = rank_descending(scores);
  std::vector<Threshold> out;
  Threshold t;
  for (size_t i = 0; i < order.size(); ++i) {
    ++t.flagged;
    t.hits += positive[order[i]] ? 1 : 0;
    if (i + 1 == order.size() || scores[order[i + 1]] != scores[order[i]]) out.push_back(t);
  }
  return out;
}

}  // namespace

std::vector<int64_t> rank_descending(const std::vector<float>& raw) {
  const std::vector<float> scores = comparable(raw);
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  return order;
}

std::vector<PrPoint> precision_recall_curve(const std::vector<float>& scores, const std::vector<uint8_t>& positive,
                                            size_t max_points) {
  const std::vector<Threshold> all = thresholds(scores, positive);
  if (all.empty() || all.back().hits == 0) return {};
  const auto positives = static_cast<double>(all.back().hits);
  std::vector<PrPoint> curve;
  const size_t step = std::max<size_t>(1, (all.size() + max_points - 1) / std::max<size_t>(1, max_points));
  for (size_t i = 0; i < all.size(); ++i)
    if ((i + 1) % step == 0 || i + 1 == all.size())
      curve.push_back({static_cast<double>(all[i].hits) / positives,
                       static_cast<double>(all[i].hits) / static_cast<double>(all[i].flagged)});
  return curve;
}

double average_precision(const std::vector<float>& scores, const std::vector<uint8_t>& positive) {
  const std::vector<Threshold> all = thresholds(scores, positive);
  if (all.empty() || all.back().hits == 0) return std::numeric_limits<double>::quiet_NaN();
  const auto positives = static_cast<double>(all.back().hits);
  double ap = 0, recall = 0;
  for (const Threshold& t : all) {
    const double r = static_cast<double>(t.hits) / positives;
    ap += (r - recall) * static_cast<double>(t.hits) / static_cast<double>(t.flagged);
    recall = r;
  }
  return ap;
}

double precision_at_k(const std::vector<float>& scores, const std::vector<uint8_t>& corrupted, int64_t k) {
  std::vector<int64_t> order = rank_descending(scores);
  k = std::min<int64_t>(k, static_cast<int64_t>(order.size()));
  if (k <= 0) return std::numeric_limits<double>::quiet_NaN();
  int64_t hits = 0;
  for (int64_t i = 0; i < k; ++i) hits += corrupted[order[i]] ? 1 : 0;
  return static_cast<double>(hits) / static_cast<double>(k);
}

double roc_auc(const std::vector<float>& raw, const std::vector<uint8_t>& corrupted) {
  // Rank-sum form: AUC = (R_pos - n_pos(n_pos+1)/2) / (n_pos n_neg), with average ranks for ties.
  const std::vector<float> scores = comparable(raw);
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
