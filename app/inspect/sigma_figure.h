// The σ-over-epochs figure (dp-inspect's sigma_over_epochs*.png and TensorBoard's sigma image):
// one heatmap panel per group of samples side by side (x: epoch with regular ticks, y: σ on a log
// axis zoomed to where the groups' σ lie, colour: the group's share of samples per σ bin on a log
// scale, with a colourbar), and under them the mean σ of each group over the epochs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/sigma_histogram.h"

namespace dp::app::inspect {

struct SigmaPanel {
  std::string name;  // e.g. "clean labels (6414)"
  train::SigmaHistory history;
};

struct PixelRect {
  int x = 0, y = 0, width = 0, height = 0;
};

// Where things are drawn (for tests and for callers that crop).
struct SigmaFigureLayout {
  int width = 0, height = 0;
  std::vector<PixelRect> panels;  // the heatmap areas, in panel order
  PixelRect colourbar, means;
};

SigmaFigureLayout sigma_figure_layout(size_t panels);

// The figure encoded as PNG. Panels must share edges and epoch count; empty groups are drawn empty.
std::vector<uint8_t> sigma_figure_png(const std::vector<SigmaPanel>& panels, const std::string& title);
void write_sigma_figure(const std::string& path, const std::vector<SigmaPanel>& panels, const std::string& title);

// The panels of the figures of a run: correct vs wrong labels (all samples when no label was
// changed), untouched vs touched by the noise protocol, and the class parameters. Empty when there
// is nothing to draw. Panel names carry the group's size.
std::vector<SigmaPanel> label_panels(const train::SigmaRecord& record);
std::vector<SigmaPanel> noise_applied_panels(const train::SigmaRecord& record);
std::vector<SigmaPanel> class_panels(const train::SigmaRecord& record);

// Axis ticks: "nice" σ values inside [lo, hi] (linear steps for a narrow range, 1-2-5 per decade
// for a wide one) and epochs at regular multiples of 1, 2, 5, 10, ... up to `epochs`.
std::vector<double> sigma_ticks(double lo, double hi);
std::vector<int64_t> epoch_ticks(int64_t epochs);

}  // namespace dp::app::inspect
