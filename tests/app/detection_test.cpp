#include <gtest/gtest.h>

#include <cmath>

#include "app/inspect/detection.h"

using namespace dp::app::inspect;

TEST(Detection, PerfectAndInvertedScores) {
  std::vector<float> s = {0.1f, 0.9f, 0.2f, 0.8f};
  std::vector<uint8_t> c = {0, 1, 0, 1};
  EXPECT_DOUBLE_EQ(roc_auc(s, c), 1.0);
  EXPECT_DOUBLE_EQ(precision_at_k(s, c, 2), 1.0);
  std::vector<uint8_t> inv = {1, 0, 1, 0};
  EXPECT_DOUBLE_EQ(roc_auc(s, inv), 0.0);
  EXPECT_DOUBLE_EQ(precision_at_k(s, inv, 2), 0.0);
}

TEST(Detection, TiesCountHalf) {
  std::vector<float> s = {1.0f, 1.0f, 1.0f, 1.0f};
  std::vector<uint8_t> c = {0, 1, 0, 1};
  EXPECT_DOUBLE_EQ(roc_auc(s, c), 0.5);
}

TEST(Detection, MatchesPairCounting) {
  // AUC = P(score_pos > score_neg) + 0.5 P(equal), counted over all pairs by brute force.
  std::vector<float> s = {0.3f, 0.7f, 0.7f, 0.1f, 0.9f, 0.5f, 0.3f, 0.2f};
  std::vector<uint8_t> c = {1, 0, 1, 0, 1, 0, 0, 1};
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (size_t j = 0; j < s.size(); ++j)
      if (c[i] && !c[j]) {
        pairs += 1;
        wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
      }
  EXPECT_NEAR(roc_auc(s, c), wins / pairs, 1e-12);
  EXPECT_EQ(rank_descending(s)[0], 4);
  EXPECT_EQ(rank_descending(s)[1], 1);  // tie with index 2: lower index first
  EXPECT_DOUBLE_EQ(precision_at_k(s, c, 3), 2.0 / 3.0);
}

TEST(Detection, DegenerateInputsGiveNaN) {
  EXPECT_TRUE(std::isnan(roc_auc({1.0f, 2.0f}, {0, 0})));
  EXPECT_TRUE(std::isnan(precision_at_k({}, {}, 5)));
}

