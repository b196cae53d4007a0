// How well learnt instance temperatures σ detect corrupted labels: a higher σ means the model
// learnt to distrust the sample, so σ is used as a score with "corrupted" as the positive class.
#pragma once
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

}  // namespace dp::app::inspect
