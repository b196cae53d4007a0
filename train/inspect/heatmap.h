// The paper's picture of a learnt curriculum: a histogram of instance σ for every epoch,
// drawn as an image (x: σ, y: epoch, colour: log count), written as PNG.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dp::inspect {

struct SigmaHistory {
  std::vector<double> edges;                 // bins + 1 σ values shared by every epoch
  std::vector<std::vector<int64_t>> counts;  // [epoch][bin]
};

// Histograms of σ per epoch over fixed edges (so rows are comparable).
std::vector<int64_t> histogram(const std::vector<float>& sigma, const std::vector<double>& edges);
std::vector<double> linear_edges(double lo, double hi, int bins);

void write_heatmap_png(const std::string& path, const SigmaHistory& history, const std::string& title);

}  // namespace dp::inspect
