// Line plots as inline SVG elements of an HTML page (app/inspect/html.h): crisp at any zoom, a few
// kilobytes, and their text escaped like the rest of the page. For the report's per-epoch curves
// and precision–recall curves.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "app/inspect/html.h"

namespace dp::app::inspect {

struct PlotSeries {
  std::string name;  // legend entry
  std::vector<double> x, y;
  std::string colour = "#1f77b4";
  bool dashed = false;
};

struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
  // Axis ranges; NaN: from the data (padded to round ticks).
  double x_min = NAN, x_max = NAN, y_min = NAN, y_max = NAN;
  int width = 440, height = 280;  // the plot; the legend adds a line per series below
};

// Appends an <svg> element to `parent`. Non-finite points are left out (a gap in the line).
void add_line_plot(HtmlNode parent, const LinePlot& plot);

// About `count` round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int count = 5);

}  // namespace dp::app::inspect
