// What dp-train says about skipped samples (app/skip_report.h).
#include <gtest/gtest.h>

#include "engine/error.h"
#include "app/skip_report.h"

using namespace dp;

TEST(SkipReport, ListsTheFirstSamplesWithTheFirstLineOfTheirReason) {
  data::SkipReport r;
  r.count = 7;
  r.first = {{3, "a.jpg", "truncated JPEG\nhint: re-encode it"}, {9, "b.jpg", "zero size"}};
  EXPECT_EQ(app::describe_skips(r), "7 skipped (a.jpg: truncated JPEG; b.jpg: zero size; ...)");
  EXPECT_EQ(app::describe_skips(data::SkipReport{}), "");
}

TEST(SkipReport, ACountSummedOverRanksWithNoExampleHereSaysWhere) {
  // A data-parallel job sums the ranks' counts; the examples are this rank's only (was "3 skipped (; ...)").
  data::SkipReport r;
  r.count = 3;
  const std::string text = app::describe_skips(r);
  EXPECT_EQ(text.find("(;"), std::string::npos) << text;
  EXPECT_NE(text.find("other ranks"), std::string::npos) << text;
  EXPECT_THROW(app::check_skipped_fraction(r, 10, 0.1, 1), Error);
}
