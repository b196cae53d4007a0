#include "train/inspect/heatmap.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "engine/error.h"
#include "train/inspect/png_file.h"

namespace dp::inspect {

std::vector<double> linear_edges(double lo, double hi, int bins) {
  std::vector<double> e(static_cast<size_t>(bins) + 1);
  for (int i = 0; i <= bins; ++i) e[static_cast<size_t>(i)] = lo + (hi - lo) * i / bins;
  return e;
}

std::vector<int64_t> histogram(const std::vector<float>& sigma, const std::vector<double>& edges) {
  std::vector<int64_t> counts(edges.size() - 1, 0);
  for (float s : sigma) {
    auto it = std::upper_bound(edges.begin(), edges.end(), static_cast<double>(s));
    auto bin = static_cast<int64_t>(it - edges.begin()) - 1;
    bin = std::clamp<int64_t>(bin, 0, static_cast<int64_t>(counts.size()) - 1);  // ends are closed
    ++counts[static_cast<size_t>(bin)];
  }
  return counts;
}

void write_heatmap_png(const std::string& path, const SigmaHistory& h, const std::string& title) {
  DP_CHECK(!h.counts.empty() && h.edges.size() >= 2, "no σ history to draw",
           "the run must have finished at least one epoch with instance parameters learnt");
  const int bins = static_cast<int>(h.edges.size()) - 1;
  const int epochs = static_cast<int>(h.counts.size());
  const int cell_w = std::max(4, 600 / bins), cell_h = std::max(2, 400 / epochs);
  const int left = 70, top = 40, bottom = 50, right = 20;
  const int width = left + bins * cell_w + right, height = top + epochs * cell_h + bottom;

  double max_log = 0;
  for (const auto& row : h.counts)
    for (int64_t c : row) max_log = std::max(max_log, std::log1p(static_cast<double>(c)));
  cv::Mat intensity(epochs, bins, CV_8UC1);
  for (int e = 0; e < epochs; ++e)
    for (int b = 0; b < bins; ++b) {
      double v = max_log > 0 ? std::log1p(static_cast<double>(h.counts[e][b])) / max_log : 0;
      intensity.at<uint8_t>(e, b) = static_cast<uint8_t>(std::lround(255 * v));
    }
  cv::Mat coloured, scaled;
  cv::applyColorMap(intensity, coloured, cv::COLORMAP_VIRIDIS);
  cv::resize(coloured, scaled, cv::Size(bins * cell_w, epochs * cell_h), 0, 0, cv::INTER_NEAREST);

  cv::Mat canvas(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  scaled.copyTo(canvas(cv::Rect(left, top, scaled.cols, scaled.rows)));
  const cv::Scalar black(0, 0, 0);
  const auto font = cv::FONT_HERSHEY_SIMPLEX;
  cv::putText(canvas, title, {left, 25}, font, 0.55, black, 1, cv::LINE_AA);
  for (int i = 0; i <= 4; ++i) {  // x ticks: σ
    int b = bins * i / 4;
    int x = left + b * cell_w;
    cv::line(canvas, {x, top + epochs * cell_h}, {x, top + epochs * cell_h + 5}, black);
    cv::putText(canvas, fmt::format("{:.2f}", h.edges[static_cast<size_t>(b)]), {x - 15, top + epochs * cell_h + 20},
                font, 0.4, black, 1, cv::LINE_AA);
  }
  cv::putText(canvas, "sigma (instance temperature)", {left + bins * cell_w / 2 - 100, height - 10}, font,
              0.45, black, 1, cv::LINE_AA);
  for (int i = 0; i <= 4; ++i) {  // y ticks: epoch, first at the top
    int e = std::min(epochs - 1, (epochs - 1) * i / 4);
    int y = top + e * cell_h + cell_h / 2;
    cv::putText(canvas, fmt::format("ep {}", e + 1), {5, y + 4}, font, 0.4, black, 1, cv::LINE_AA);
  }
  write_png_bgr(path, canvas.data, canvas.cols, canvas.rows, canvas.step);
}

}  // namespace dp::inspect
