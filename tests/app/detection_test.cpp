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


// Precision-recall and average precision by hand: flagging the top 1..4 of scores 0.9 > 0.8 > 0.7
// > 0.6 with positives at the first and third gives (R, P) = (.5, 1), (.5, .5), (1, 2/3), (1, .5)
// and AP = .5·1 + 0·.5 + .5·(2/3) (scikit-learn's average_precision_score: 0.8333).
TEST(Detection, PrecisionRecallCurveAndAveragePrecision) {
  const std::vector<float> s = {0.6f, 0.8f, 0.9f, 0.7f};
  const std::vector<uint8_t> c = {0, 0, 1, 1};
  const std::vector<PrPoint> pr = precision_recall_curve(s, c);
  ASSERT_EQ(pr.size(), 4u);
  EXPECT_DOUBLE_EQ(pr[0].recall, 0.5);
  EXPECT_DOUBLE_EQ(pr[0].precision, 1.0);
  EXPECT_DOUBLE_EQ(pr[1].precision, 0.5);
  EXPECT_DOUBLE_EQ(pr[2].recall, 1.0);
  EXPECT_DOUBLE_EQ(pr[2].precision, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(pr[3].precision, 0.5);
  EXPECT_NEAR(average_precision(s, c), 0.5 + 0.5 * 2.0 / 3.0, 1e-12);
  // Tied scores are flagged together: one point for the tie.
  EXPECT_EQ(precision_recall_curve({1.f, 1.f, 0.f}, {1, 0, 0}).size(), 2u);
  EXPECT_NEAR(average_precision({1.f, 1.f, 0.f}, {1, 0, 0}), 0.5, 1e-12);
  EXPECT_TRUE(std::isnan(average_precision(s, {0, 0, 0, 0})));
  // Thinned to at most max_points, the last point kept.
  std::vector<float> many(1000);
  std::vector<uint8_t> pos(1000);
  for (size_t i = 0; i < many.size(); ++i) many[i] = static_cast<float>(i), pos[i] = i % 3 == 0;
  const std::vector<PrPoint> thin = precision_recall_curve(many, pos, 50);
  EXPECT_LE(thin.size(), 50u);
  EXPECT_DOUBLE_EQ(thin.back().recall, 1.0);
}

// A sample without a score (NaN: e.g. never trained on) ranks last, and the ranking stays a
// strict order (std::sort with NaN comparisons is undefined behaviour).
TEST(Detection, NanScoresRankLast) {
  const float nan = std::nanf("");
  const std::vector<float> s = {nan, 0.5f, nan, 0.9f, 0.1f};
  const std::vector<int64_t> order = rank_descending(s);
  EXPECT_EQ(order, (std::vector<int64_t>{3, 1, 4, 0, 2}));
  EXPECT_DOUBLE_EQ(roc_auc(s, {0, 1, 0, 1, 0}), 1.0);
}
