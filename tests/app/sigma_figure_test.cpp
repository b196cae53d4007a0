// The σ histogram (one implementation for TensorBoard, the history and the figure) and the σ
// figure read back from its PNG: the size of its layout, and data drawn in every panel.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <opencv2/core.hpp>

#include "app/inspect/png_file.h"
#include "app/inspect/sigma_figure.h"
#include "train/sigma_histogram.h"

using namespace dp;

TEST(SigmaHistogram, BinsWithClosedEndsAndMask) {
  auto edges = train::linear_edges(0.0, 2.0, 4);
  EXPECT_EQ(train::histogram({0.1f, 0.6f, 1.9f, 2.0f, 5.0f}, edges), (std::vector<int64_t>{1, 1, 0, 3}));
  std::vector<uint8_t> mask = {1, 0, 1, 0, 1};
  EXPECT_EQ(train::histogram({0.1f, 0.6f, 1.9f, 2.0f, 5.0f}, edges, &mask, 1), (std::vector<int64_t>{1, 0, 0, 2}));
  train::SigmaHistory h;
  h.edges = edges;
  const std::vector<uint8_t> group = {1, 0, 1};
  h.add_epoch({0.1f, 0.6f, 1.9f}, &group, 0);
  EXPECT_EQ(h.total(0), 1);
  EXPECT_FLOAT_EQ(h.mean(0), 0.6f);
  auto log = train::log_edges(0.05, 20.0, 1000);
  EXPECT_NEAR(log.front(), 0.05, 1e-12);
  EXPECT_DOUBLE_EQ(log.back(), 20.0);
}

TEST(SigmaFigure, RegularTicks) {
  EXPECT_EQ(app::inspect::epoch_ticks(8), (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(app::inspect::epoch_ticks(16), (std::vector<int64_t>{2, 4, 6, 8, 10, 12, 14, 16}));
  EXPECT_EQ(app::inspect::epoch_ticks(120), (std::vector<int64_t>{20, 40, 60, 80, 100, 120}));
  EXPECT_EQ(app::inspect::sigma_ticks(3.1, 4.9), (std::vector<double>{3.25, 3.5, 3.75, 4.0, 4.25, 4.5, 4.75}));
  EXPECT_EQ(app::inspect::sigma_ticks(0.65, 3.2), (std::vector<double>{1.0, 1.5, 2.0, 2.5, 3.0}));
  const std::vector<double> low = app::inspect::sigma_ticks(0.7, 2.3);  // steps of 0.2, from 0.8
  ASSERT_EQ(low.size(), 8u);
  for (size_t i = 0; i < low.size(); ++i) EXPECT_NEAR(low[i], 0.8 + 0.2 * static_cast<double>(i), 1e-12);
  EXPECT_EQ(app::inspect::sigma_ticks(0.05, 20.0), (std::vector<double>{0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20}));
}

namespace {

// `epochs` epochs of `n` samples whose σ drifts from 1 towards `target`, spread by ±10 %.
train::SigmaHistory drifting(double target, int n, int epochs) {
  train::SigmaHistory h;
  h.edges = train::sigma_history_edges();
  for (int e = 0; e < epochs; ++e) {
    std::vector<float> s;
    const double centre = std::pow(target, static_cast<double>(e + 1) / epochs);
    for (int i = 0; i < n; ++i) s.push_back(static_cast<float>(centre * (0.9 + 0.2 * i / n)));
    h.add_epoch(s);
  }
  return h;
}

// The share of a rectangle's pixels that are not paper white, and whether it holds more than one colour.
std::pair<double, bool> ink(const cv::Mat& image, const app::inspect::PixelRect& r) {
  const cv::Mat area = image(cv::Rect(r.x, r.y, r.width, r.height));
  int64_t inked = 0;
  for (int y = 0; y < area.rows; ++y)
    for (int x = 0; x < area.cols; ++x) {
      const cv::Vec3b p = area.at<cv::Vec3b>(y, x);
      inked += (p[0] < 250 || p[1] < 250 || p[2] < 250);
    }
  cv::Scalar mean, stddev;
  cv::meanStdDev(area, mean, stddev);
  return {static_cast<double>(inked) / static_cast<double>(area.total()), stddev[0] + stddev[1] + stddev[2] > 1.0};
}

}  // namespace

TEST(SigmaFigure, PngReadsBackWithBothPanelsDrawn) {
  const int epochs = 12;
  std::vector<app::inspect::SigmaPanel> panels = {{"correct labels (600)", drifting(0.8, 600, epochs)},
                                             {"wrong labels (400)", drifting(4.5, 400, epochs)}};
  std::string tmpl = (std::filesystem::temp_directory_path() / "dp-sigma-fig-XXXXXX").string();
  const std::string dir = mkdtemp(tmpl.data());
  const std::string path = dir + "/sigma_over_epochs.png";
  app::inspect::write_sigma_figure(path, panels, "instance sigma per epoch");

  int width = 0, height = 0;
  std::vector<uint8_t> pixels = app::inspect::read_png_bgr(path, width, height);
  const cv::Mat image(height, width, CV_8UC3, pixels.data());
  ASSERT_FALSE(image.empty()) << "the PNG does not read back";
  const app::inspect::SigmaFigureLayout layout = app::inspect::sigma_figure_layout(panels.size());
  EXPECT_EQ(image.cols, layout.width);
  EXPECT_EQ(image.rows, layout.height);
  ASSERT_EQ(layout.panels.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    auto [share, varied] = ink(image, layout.panels[i]);
    // The σ axis is scaled to the data: the occupied band fills a good part of each panel.
    EXPECT_GT(share, 0.05) << "panel " << i << " is blank";
    EXPECT_TRUE(varied) << "panel " << i << " is one colour";
  }
  EXPECT_TRUE(ink(image, layout.colourbar).second) << "no colourbar";
  EXPECT_GT(ink(image, layout.means).first, 0.01) << "no mean-σ curves";
  std::filesystem::remove_all(dir);
}

TEST(SigmaFigure, RefusesEmptyHistory) {
  train::SigmaHistory h;
  h.edges = train::sigma_history_edges();
  EXPECT_ANY_THROW(app::inspect::sigma_figure_png({{"none", h}}, "x"));
}
