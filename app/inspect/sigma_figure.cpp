#include "app/inspect/sigma_figure.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <opencv2/imgproc.hpp>

#include "engine/error.h"
#include "app/inspect/png_file.h"

namespace dp::app::inspect {

namespace {

// Layout in pixels.
constexpr int kPanelW = 340, kPanelH = 300, kGap = 24, kLeft = 64, kTop = 56, kAxisBelow = 44;
constexpr int kBarGap = 18, kBarW = 16, kBarLabels = 70, kMeansGap = 40, kMeansH = 170, kBottom = 44;
constexpr int kMaxDisplayBins = 160;  // σ rows of a panel: fine history bins are merged down to this
constexpr double kDecades = 3.0;      // colour range: the largest share down to 1/1000 of it
constexpr double kTailShare = 0.001;  // the σ axis leaves out this share of samples at each end

const cv::Scalar kBlack(0, 0, 0), kGrey(150, 150, 150), kWhite(255, 255, 255);
const auto kFont = cv::FONT_HERSHEY_SIMPLEX;
// Colours of the groups' mean curves (BGR): blue, vermilion, green, purple (colour-blind safe).
const cv::Scalar kGroupColours[] = {{178, 114, 0}, {0, 94, 213}, {115, 158, 0}, {167, 121, 204}};

void text(cv::Mat& m, const std::string& s, cv::Point at, double scale = 0.42, cv::Scalar colour = kBlack) {
  cv::putText(m, s, at, kFont, scale, colour, 1, cv::LINE_AA);
}
int text_width(const std::string& s, double scale = 0.42) {
  int baseline = 0;
  return cv::getTextSize(s, kFont, scale, 1, &baseline).width;
}

double nice_step(double raw) {
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0})
    if (m * p >= raw) return m * p;
  return 10.0 * p;
}

std::string tick_label(double v) { return fmt::format("{:g}", std::abs(v) < 1e-12 ? 0.0 : v); }

// The σ range drawn: the fine bins holding all but kTailShare of the samples at each end, over
// every group and epoch, widened a little so the extremes do not sit on the frame.
struct SigmaView {
  size_t first_bin = 0, bins_per_row = 1, rows = 1;
  double lo = 0, hi = 0;  // σ at the bottom and top of the panels
};

SigmaView sigma_view(const std::vector<SigmaPanel>& panels) {
  const std::vector<double>& edges = panels[0].history.edges;
  const size_t bins = edges.size() - 1;
  std::vector<double> pooled(bins, 0.0);
  for (const SigmaPanel& p : panels)
    for (const auto& row : p.history.counts)
      for (size_t b = 0; b < bins; ++b) pooled[b] += static_cast<double>(row[b]);
  double total = 0;
  for (double c : pooled) total += c;
  size_t lo = 0, hi = bins - 1;
  if (total > 0) {
    double cum = 0;
    for (lo = 0; lo < bins; ++lo) {
      cum += pooled[lo];
      if (cum > kTailShare * total) break;
    }
    cum = 0;
    for (hi = bins - 1; hi > lo; --hi) {
      cum += pooled[hi];
      if (cum > kTailShare * total) break;
    }
  }
  const size_t pad = std::max<size_t>(2, (hi - lo + 1) / 12);
  lo = lo > pad ? lo - pad : 0;
  hi = std::min(bins - 1, hi + pad);
  SigmaView v;
  v.first_bin = lo;
  const size_t span = hi - lo + 1;
  v.bins_per_row = (span + kMaxDisplayBins - 1) / kMaxDisplayBins;
  v.rows = (span + v.bins_per_row - 1) / v.bins_per_row;
  v.lo = edges[lo];
  v.hi = edges[std::min(bins, lo + v.rows * v.bins_per_row)];
  return v;
}

int sigma_y(const PixelRect& r, const SigmaView& v, double sigma) {
  const double t = (std::log(sigma) - std::log(v.lo)) / (std::log(v.hi) - std::log(v.lo));
  return r.y + static_cast<int>(std::lround(r.height * (1.0 - t)));
}

int epoch_x(const PixelRect& r, int64_t epochs, double epoch) {  // 1-based epoch at its column's centre
  return r.x + static_cast<int>(std::lround(r.width * (epoch - 0.5) / static_cast<double>(epochs)));
}

// share[row][epoch]: the group's share of samples in each display row of σ (NaN: empty group).
// Ticks and the "epoch" label under a plot box (the panels and the mean-σ plot share them).
void draw_epoch_axis(cv::Mat& canvas, const PixelRect& r, int64_t epochs) {
  for (int64_t e : epoch_ticks(epochs)) {
    const int x = epoch_x(r, epochs, static_cast<double>(e));
    cv::line(canvas, {x, r.y + r.height}, {x, r.y + r.height + 5}, kBlack);
    const std::string s = std::to_string(e);
    text(canvas, s, {x - text_width(s) / 2, r.y + r.height + 19});
  }
  text(canvas, "epoch", {r.x + (r.width - text_width("epoch")) / 2, r.y + r.height + 37});
}

std::vector<std::vector<double>> shares(const train::SigmaHistory& h, const SigmaView& v) {
  std::vector<std::vector<double>> s(v.rows, std::vector<double>(static_cast<size_t>(h.epochs()), 0.0));
  for (int64_t e = 0; e < h.epochs(); ++e) {
    const double total = static_cast<double>(h.total(e));
    const auto& row = h.counts[static_cast<size_t>(e)];
    for (size_t r = 0; r < v.rows; ++r) {
      double c = 0;
      for (size_t k = 0; k < v.bins_per_row; ++k) {
        const size_t b = v.first_bin + r * v.bins_per_row + k;
        if (b < row.size()) c += static_cast<double>(row[b]);
      }
      s[r][static_cast<size_t>(e)] = total > 0 ? c / total : std::nan("");
    }
  }
  return s;
}

void draw_panel(cv::Mat& canvas, const PixelRect& r, const SigmaPanel& p, const SigmaView& v, double top_log) {
  const auto share = shares(p.history, v);
  const int64_t epochs = p.history.epochs();
  cv::Mat index(static_cast<int>(v.rows), static_cast<int>(epochs), CV_8UC1, cv::Scalar(0));
  cv::Mat empty(index.size(), CV_8UC1, cv::Scalar(0));
  for (size_t row = 0; row < v.rows; ++row)
    for (int64_t e = 0; e < epochs; ++e) {
      const double s = share[row][static_cast<size_t>(e)];
      const int y = static_cast<int>(v.rows - 1 - row);  // σ grows upwards
      if (!(s > 0)) {
        empty.at<uint8_t>(y, static_cast<int>(e)) = 255;
        continue;
      }
      const double t = std::clamp((std::log10(s) - (top_log - kDecades)) / kDecades, 0.0, 1.0);
      index.at<uint8_t>(y, static_cast<int>(e)) = static_cast<uint8_t>(std::lround(255 * t));
    }
  cv::Mat coloured, scaled, empty_scaled;
  cv::applyColorMap(index, coloured, cv::COLORMAP_VIRIDIS);
  coloured.setTo(kWhite, empty);  // no samples: paper white, so the occupied σ range stands out
  cv::resize(coloured, scaled, cv::Size(r.width, r.height), 0, 0, cv::INTER_NEAREST);
  scaled.copyTo(canvas(cv::Rect(r.x, r.y, r.width, r.height)));
  // The group's mean σ over epochs, on its own panel.
  std::vector<cv::Point> curve;
  for (int64_t e = 0; e < epochs; ++e) {
    const double m = p.history.mean(e);
    if (std::isfinite(m) && m > 0) curve.emplace_back(epoch_x(r, epochs, static_cast<double>(e + 1)),
                                                       std::clamp(sigma_y(r, v, m), r.y, r.y + r.height));
  }
  if (curve.size() > 1) {
    cv::polylines(canvas, curve, false, kBlack, 3, cv::LINE_AA);
    cv::polylines(canvas, curve, false, kWhite, 1, cv::LINE_AA);
  }
  cv::rectangle(canvas, cv::Rect(r.x - 1, r.y - 1, r.width + 2, r.height + 2), kBlack);
  text(canvas, p.name, {r.x + (r.width - text_width(p.name, 0.48)) / 2, r.y - 8}, 0.48);
  draw_epoch_axis(canvas, r, epochs);
}

void draw_sigma_axis(cv::Mat& canvas, const PixelRect& r, const SigmaView& v) {
  for (double t : sigma_ticks(v.lo, v.hi)) {
    const int y = sigma_y(r, v, t);
    cv::line(canvas, {r.x - 6, y}, {r.x - 1, y}, kBlack);
    const std::string s = tick_label(t);
    text(canvas, s, {r.x - 9 - text_width(s), y + 4});
  }
  // Rotated axis title: draw it on a strip, rotate the strip, paste it.
  const std::string title = "sigma (log scale)";
  cv::Mat strip(18, text_width(title) + 4, CV_8UC3, kWhite);
  text(strip, title, {2, 13});
  cv::Mat rotated;
  cv::rotate(strip, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
  const int y = std::max(0, r.y + (r.height - rotated.rows) / 2);
  if (y + rotated.rows <= canvas.rows) rotated.copyTo(canvas(cv::Rect(2, y, rotated.cols, rotated.rows)));
}

void draw_colourbar(cv::Mat& canvas, const PixelRect& r, double top_log) {
  cv::Mat ramp(256, 1, CV_8UC1);
  for (int i = 0; i < 256; ++i) ramp.at<uint8_t>(i, 0) = static_cast<uint8_t>(255 - i);
  cv::Mat coloured, scaled;
  cv::applyColorMap(ramp, coloured, cv::COLORMAP_VIRIDIS);
  cv::resize(coloured, scaled, cv::Size(r.width, r.height), 0, 0, cv::INTER_LINEAR);
  scaled.copyTo(canvas(cv::Rect(r.x, r.y, r.width, r.height)));
  cv::rectangle(canvas, cv::Rect(r.x - 1, r.y - 1, r.width + 2, r.height + 2), kBlack);
  const double bottom_log = top_log - kDecades;
  for (double k = std::ceil(bottom_log); k <= top_log + 1e-9; k += 1.0) {
    const int y = r.y + static_cast<int>(std::lround(r.height * (top_log - k) / kDecades));
    cv::line(canvas, {r.x + r.width, y}, {r.x + r.width + 4, y}, kBlack);
    text(canvas, tick_label(std::pow(10.0, k)), {r.x + r.width + 7, y + 4}, 0.38);
  }
  text(canvas, "share of", {r.x - 8, r.y + r.height + 16}, 0.36);
  text(canvas, "samples", {r.x - 8, r.y + r.height + 30}, 0.36);
}

void draw_means(cv::Mat& canvas, const PixelRect& r, const std::vector<SigmaPanel>& panels) {
  const int64_t epochs = panels[0].history.epochs();
  double lo = HUGE_VAL, hi = -HUGE_VAL;
  for (const SigmaPanel& p : panels)
    for (int64_t e = 0; e < epochs; ++e) {
      const double m = p.history.mean(e);
      if (std::isfinite(m)) lo = std::min(lo, m), hi = std::max(hi, m);
    }
  if (!(lo <= hi)) lo = 0.5, hi = 2.0;
  const double pad = std::max(0.08 * (hi - lo), 0.02 * std::max(std::abs(hi), 1e-3));
  lo -= pad;
  hi += pad;
  auto y_of = [&](double m) { return r.y + static_cast<int>(std::lround(r.height * (hi - m) / (hi - lo))); };
  cv::rectangle(canvas, cv::Rect(r.x - 1, r.y - 1, r.width + 2, r.height + 2), kBlack);
  const double step = nice_step((hi - lo) / 4.0);
  for (double t = std::ceil(lo / step) * step; t <= hi; t += step) {
    const int y = y_of(t);
    cv::line(canvas, {r.x, y}, {r.x + r.width, y}, cv::Scalar(225, 225, 225));
    cv::line(canvas, {r.x - 6, y}, {r.x - 1, y}, kBlack);
    const std::string s = tick_label(t);
    text(canvas, s, {r.x - 9 - text_width(s), y + 4});
  }
  draw_epoch_axis(canvas, r, epochs);
  // Title and legend above the box, where no curve can hide them.
  text(canvas, "mean sigma", {r.x, r.y - 10}, 0.45);
  int legend_x = r.x + r.width;
  for (size_t i = panels.size(); i-- > 0;) {
    const cv::Scalar colour = kGroupColours[i % std::size(kGroupColours)];
    std::vector<cv::Point> curve;
    for (int64_t e = 0; e < epochs; ++e) {
      const double m = panels[i].history.mean(e);
      if (std::isfinite(m)) curve.emplace_back(epoch_x(r, epochs, static_cast<double>(e + 1)), y_of(m));
    }
    cv::polylines(canvas, curve, false, colour, 2, cv::LINE_AA);
    if (epochs <= 40)
      for (const cv::Point& p : curve) cv::circle(canvas, p, 3, colour, cv::FILLED, cv::LINE_AA);
    legend_x -= text_width(panels[i].name, 0.42) + 34;
    cv::line(canvas, {legend_x, r.y - 14}, {legend_x + 20, r.y - 14}, colour, 2, cv::LINE_AA);
    text(canvas, panels[i].name, {legend_x + 25, r.y - 10});
  }
}

}  // namespace

std::vector<double> sigma_ticks(double lo, double hi) {
  std::vector<double> ticks;
  if (!(lo > 0 && hi > lo)) return ticks;
  if (hi / lo > 10.0) {  // wide: 1, 2, 5 per decade (1 only when that is too many)
    for (const std::vector<double>& mantissas : {std::vector<double>{1, 2, 5}, std::vector<double>{1}}) {
      ticks.clear();
      for (double d = std::floor(std::log10(lo)); d <= std::ceil(std::log10(hi)); d += 1.0)
        for (double m : mantissas) {
          const double t = m * std::pow(10.0, d);
          if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) ticks.push_back(t);
        }
      if (ticks.size() <= 9) break;
    }
    return ticks;
  }
  const double step = nice_step((hi - lo) / 8.0);  // dense enough for the stretched low end of a log axis
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi * (1 + 1e-12); t += step)
    ticks.push_back(std::round(t / step) * step);
  return ticks;
}

std::vector<int64_t> epoch_ticks(int64_t epochs) {
  std::vector<int64_t> ticks;
  if (epochs <= 0) return ticks;
  int64_t step = 1;
  for (int64_t p = 1;; p *= 10) {
    if (epochs / p <= 10) { step = p; break; }
    if (epochs / (2 * p) <= 10) { step = 2 * p; break; }
    if (epochs / (5 * p) <= 10) { step = 5 * p; break; }
  }
  for (int64_t e = step; e <= epochs; e += step) ticks.push_back(e);
  if (step > 1 && ticks.size() < 2) ticks.insert(ticks.begin(), 1);
  return ticks;
}

namespace {

SigmaPanel panel(const char* what, train::SigmaHistory h) {
  std::string name = h.epochs() > 0 ? fmt::format("{} ({})", what, h.total(h.epochs() - 1)) : what;
  return {std::move(name), std::move(h)};
}

}  // namespace

std::vector<SigmaPanel> label_panels(const train::SigmaRecord& r) {
  if (r.inst.epochs() == 0) return {};
  if (!r.has_groups()) return {panel("all samples", r.inst)};
  return {panel("correct labels", train::merged(r.inst_untouched, r.inst_permuted_kept)),
          panel("wrong labels", r.inst_mislabelled)};
}

std::vector<SigmaPanel> noise_applied_panels(const train::SigmaRecord& r) {
  if (!r.has_groups()) return {};
  return {panel("untouched", r.inst_untouched),
          panel("noise protocol applied", train::merged(r.inst_mislabelled, r.inst_permuted_kept))};
}

std::vector<SigmaPanel> class_panels(const train::SigmaRecord& r) {
  if (r.cls.epochs() == 0) return {};
  return {panel("classes", r.cls)};
}

SigmaFigureLayout sigma_figure_layout(size_t panels) {
  SigmaFigureLayout l;
  const int n = static_cast<int>(std::max<size_t>(panels, 1));
  for (int i = 0; i < n; ++i) l.panels.push_back({kLeft + i * (kPanelW + kGap), kTop, kPanelW, kPanelH});
  const int panels_right = kLeft + n * kPanelW + (n - 1) * kGap;
  l.colourbar = {panels_right + kBarGap, kTop, kBarW, kPanelH};
  l.means = {kLeft, kTop + kPanelH + kAxisBelow + kMeansGap, panels_right - kLeft, kMeansH};
  l.width = l.colourbar.x + kBarW + kBarLabels;
  l.height = l.means.y + kMeansH + kBottom;
  return l;
}

std::vector<uint8_t> sigma_figure_png(const std::vector<SigmaPanel>& panels, const std::string& title) {
  DP_CHECK(!panels.empty() && panels[0].history.epochs() > 0 && panels[0].history.edges.size() >= 2,
           "no σ history to draw", "the run must have finished at least one epoch with data parameters learnt");
  for (const SigmaPanel& p : panels)
    DP_CHECK(p.history.edges == panels[0].history.edges && p.history.epochs() == panels[0].history.epochs(),
             fmt::format("σ figure: panel '{}' has other bins or epochs than '{}'", p.name, panels[0].name),
             "draw groups of one run together");
  const SigmaFigureLayout l = sigma_figure_layout(panels.size());
  const SigmaView view = sigma_view(panels);
  double top_share = 1e-12;  // one colour scale for every panel, so they compare
  for (const SigmaPanel& p : panels)
    for (const auto& row : shares(p.history, view))
      for (double s : row)
        if (s > top_share) top_share = s;
  const double top_log = std::log10(top_share);

  cv::Mat canvas(l.height, l.width, CV_8UC3, kWhite);
  text(canvas, title, {kLeft, 24}, 0.55);
  for (size_t i = 0; i < panels.size(); ++i) draw_panel(canvas, l.panels[i], panels[i], view, top_log);
  draw_sigma_axis(canvas, l.panels[0], view);
  draw_colourbar(canvas, l.colourbar, top_log);
  draw_means(canvas, l.means, panels);
  return encode_png_bgr(canvas.data, canvas.cols, canvas.rows, canvas.step);  // libpng: no OpenCV codecs (GPU kit)
}

void write_sigma_figure(const std::string& path, const std::vector<SigmaPanel>& panels, const std::string& title) {
  const std::vector<uint8_t> png = sigma_figure_png(panels, title);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  DP_CHECK(out.good(), "cannot write " + path, "check that the folder is writable");
}

}  // namespace dp::app::inspect
