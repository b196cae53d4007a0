#include "app/inspect/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace dp::app::inspect {

namespace {

constexpr int kLeft = 56, kRight = 12, kTop = 26, kBottom = 40;

std::string num(double v) { return fmt::format("{:.1f}", v); }

std::string tick_label(double v, double step) {
  if (std::fabs(v) < 1e-12 * std::max(1.0, step)) return "0";
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  return fmt::format("{:.{}f}", v, decimals);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (hi <= lo) hi = lo + 1;
  const double raw = (hi - lo) / std::max(1, count);
  const int exponent = static_cast<int>(std::floor(std::log10(raw)));
  int mantissa = 10;
  for (int m : {1, 2, 5})
    if (m * std::pow(10.0, exponent) >= raw) {
      mantissa = m;
      break;
    }
  // Tick k is k·mantissa·10^exponent, computed so that 0.6 comes out as the double 0.6: a negative
  // exponent divides by an exact power of ten instead of multiplying by an inexact 10^-e.
  const double scale = std::pow(10.0, std::abs(exponent));
  auto tick = [&](int64_t k) {
    const double units = static_cast<double>(k * mantissa);
    return exponent >= 0 ? units * scale : units / scale;
  };
  const double step = tick(1);
  std::vector<double> ticks;
  for (auto k = static_cast<int64_t>(std::floor(lo / step)); tick(k) <= hi + step * 1e-9; ++k)
    if (tick(k) >= lo - step * 1e-9) ticks.push_back(tick(k));
  return ticks;
}

void add_line_plot(HtmlNode parent, const LinePlot& p) {
  double x0 = p.x_min, x1 = p.x_max, y0 = p.y_min, y1 = p.y_max;
  auto extend = [](double& lo, double& hi, double v, bool lo_auto, bool hi_auto) {
    if (!std::isfinite(v)) return;
    if (lo_auto) lo = std::isnan(lo) ? v : std::min(lo, v);
    if (hi_auto) hi = std::isnan(hi) ? v : std::max(hi, v);
  };
  const bool ax0 = std::isnan(p.x_min), ax1 = std::isnan(p.x_max), ay0 = std::isnan(p.y_min), ay1 = std::isnan(p.y_max);
  for (const PlotSeries& s : p.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        extend(x0, x1, s.x[i], ax0, ax1);
        extend(y0, y1, s.y[i], ay0, ay1);
      }
  if (std::isnan(x0) || std::isnan(x1)) x0 = 0, x1 = 1;
  if (std::isnan(y0) || std::isnan(y1)) y0 = 0, y1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + (y0 == 0 ? 1 : std::fabs(y0) * 0.1);
  const std::vector<double> xt = nice_ticks(x0, x1), yt = nice_ticks(y0, y1);
  // Automatic ends snap outward to the ticks' step, so the outer ticks sit on the frame.
  auto snap = [](double& lo, double& hi, const std::vector<double>& t, bool lo_auto, bool hi_auto) {
    if (t.size() < 2) return;
    const double step = t[1] - t[0];
    if (lo_auto) lo = std::floor(lo / step + 1e-9) * step;
    if (hi_auto) hi = std::ceil(hi / step - 1e-9) * step;
  };
  snap(x0, x1, xt, ax0, ax1);
  snap(y0, y1, yt, ay0, ay1);
  const std::vector<double> xticks = nice_ticks(x0, x1), yticks = nice_ticks(y0, y1);

  // The legend goes under the x axis, one entry per line: it never hides a curve.
  const int legend_height = 15 * static_cast<int>(p.series.size());
  const int height = p.height + legend_height;
  const double w = p.width - kLeft - kRight, h = p.height - kTop - kBottom;
  auto px = [&](double v) { return kLeft + (v - x0) / (x1 - x0) * w; };
  auto py = [&](double v) { return kTop + h - (v - y0) / (y1 - y0) * h; };
  HtmlNode svg = parent.add("svg", {{"xmlns", "http://www.w3.org/2000/svg"},
                                    {"viewBox", fmt::format("0 0 {} {}", p.width, height)},
                                    {"width", std::to_string(p.width)},
                                    {"height", std::to_string(height)},
                                    {"class", "plot"},
                                    {"role", "img"},
                                    {"aria-label", p.title}});
  svg.add("title", {}, p.title);
  svg.add("text", {{"x", num(kLeft)}, {"y", "16"}, {"class", "plot-title"}}, p.title);
  const double step_x = xticks.size() > 1 ? xticks[1] - xticks[0] : 1, step_y = yticks.size() > 1 ? yticks[1] - yticks[0] : 1;
  for (double t : yticks) {
    if (t < y0 - 1e-9 * step_y || t > y1 + 1e-9 * step_y) continue;
    svg.add("line", {{"x1", num(kLeft)}, {"x2", num(kLeft + w)}, {"y1", num(py(t))}, {"y2", num(py(t))}, {"class", "grid"}});
    svg.add("text", {{"x", num(kLeft - 4)}, {"y", num(py(t) + 4)}, {"text-anchor", "end"}}, tick_label(t, step_y));
  }
  for (double t : xticks) {
    if (t < x0 - 1e-9 * step_x || t > x1 + 1e-9 * step_x) continue;
    svg.add("line", {{"x1", num(px(t))}, {"x2", num(px(t))}, {"y1", num(kTop)}, {"y2", num(kTop + h)}, {"class", "grid"}});
    svg.add("text", {{"x", num(px(t))}, {"y", num(kTop + h + 14)}, {"text-anchor", "middle"}}, tick_label(t, step_x));
  }
  svg.add("rect", {{"x", num(kLeft)}, {"y", num(kTop)}, {"width", num(w)}, {"height", num(h)}, {"class", "frame"}});
  svg.add("text", {{"x", num(kLeft + w / 2)}, {"y", num(p.height - 6)}, {"text-anchor", "middle"}}, p.x_label);
  svg.add("text", {{"x", "12"}, {"y", num(kTop + h / 2)}, {"text-anchor", "middle"},
                   {"transform", fmt::format("rotate(-90 12 {})", num(kTop + h / 2))}},
          p.y_label);
  for (size_t k = 0; k < p.series.size(); ++k) {
    const PlotSeries& s = p.series[k];
    // One polyline per run of finite points.
    std::string points;
    auto flush = [&] {
      if (!points.empty())
        svg.add("polyline", {{"points", points},
                             {"fill", "none"},
                             {"stroke", s.colour},
                             {"stroke-width", "1.8"},
                             {"stroke-dasharray", s.dashed ? "5 3" : "none"}});
      points.clear();
    };
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        flush();
        continue;
      }
      const double cx = std::clamp(px(s.x[i]), double(kLeft), kLeft + w), cy = std::clamp(py(s.y[i]), double(kTop), kTop + h);
      points += (points.empty() ? "" : " ") + num(cx) + "," + num(cy);
    }
    flush();
    const double ly = p.height + 4 + 15 * static_cast<double>(k);
    svg.add("line", {{"x1", num(kLeft)}, {"x2", num(kLeft + 22)}, {"y1", num(ly - 4)}, {"y2", num(ly - 4)},
                     {"stroke", s.colour}, {"stroke-width", "2"}, {"stroke-dasharray", s.dashed ? "5 3" : "none"}});
    svg.add("text", {{"x", num(kLeft + 28)}, {"y", num(ly)}, {"class", "legend"}}, s.name);
  }
}

}  // namespace dp::app::inspect
