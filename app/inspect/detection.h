// How well a per-sample score detects corrupted labels: a higher score means more suspect (σ: the
// model learnt to distrust the sample; or a mean training loss, 1 − self-confidence...), with
// "corrupted" as the positive class. NaN scores (a sample nothing was measured for) rank last.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dp::app::inspect {

// Sample indices ordered by descending score (ties: lower index first, for stable reports).
std::vector<int64_t> rank_descending(const std::vector<float>& scores);

// Fraction of corrupted samples among the k highest scores.
double precision_at_k(const std::vector<float>& scores, const std::vector<uint8_t>& corrupted, int64_t k);

// Area under the ROC curve (Mann–Whitney U with tied scores counted one half).
// Returns NaN when one of the classes is empty.
double roc_auc(const std::vector<float>& scores, const std::vector<uint8_t>& corrupted);

struct PrPoint {
  double recall = 0, precision = 0;
};

// The precision–recall curve of flagging the k highest scores, k = 1..n, thinned to at most
// `max_points` points evenly spread in k (the last one is k = n); tied scores are flagged together.
std::vector<PrPoint> precision_recall_curve(const std::vector<float>& scores, const std::vector<uint8_t>& corrupted,
                                            size_t max_points = 200);

// Average precision (the area under the step-wise precision–recall curve, as scikit-learn's
// average_precision_score computes it). NaN without positives.
double average_precision(const std::vector<float>& scores, const std::vector<uint8_t>& corrupted);

}  // namespace dp::app::inspect
