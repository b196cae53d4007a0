#include "train/sigma_histogram.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace dp::train {

std::vector<double> linear_edges(double lo, double hi, int bins) {
  std::vector<double> e(static_cast<size_t>(bins) + 1);
  for (int i = 0; i <= bins; ++i) e[static_cast<size_t>(i)] = lo + (hi - lo) * i / bins;
  e.back() = hi;
  return e;
}

std::vector<double> log_edges(double lo, double hi, int bins) {
  std::vector<double> e(static_cast<size_t>(bins) + 1);
  for (int i = 0; i <= bins; ++i) e[static_cast<size_t>(i)] = lo * std::pow(hi / lo, static_cast<double>(i) / bins);
  e.back() = hi;
  return e;
}

std::vector<int64_t> histogram(const std::vector<float>& sigma, const std::vector<double>& edges,
                               const std::vector<uint8_t>* mask, uint8_t select) {
  DP_CHECK(edges.size() >= 2, "a σ histogram needs at least two edges", "pass bins + 1 edges");
  DP_CHECK(mask == nullptr || mask->size() == sigma.size(),
           fmt::format("σ histogram: the mask has {} entries for {} values", mask ? mask->size() : 0, sigma.size()),
           "the sample mask needs one entry per training sample");
  std::vector<int64_t> counts(edges.size() - 1, 0);
  for (size_t i = 0; i < sigma.size(); ++i) {
    if (mask != nullptr && (*mask)[i] != select) continue;
    auto it = std::upper_bound(edges.begin(), edges.end(), static_cast<double>(sigma[i]));
    auto bin = static_cast<int64_t>(it - edges.begin()) - 1;
    bin = std::clamp<int64_t>(bin, 0, static_cast<int64_t>(counts.size()) - 1);  // ends are closed
    ++counts[static_cast<size_t>(bin)];
  }
  return counts;
}

std::vector<double> sigma_history_edges() { return log_edges(1.0 / 20.0, 20.0, 1000); }

int64_t SigmaHistory::total(int64_t epoch) const {
  int64_t n = 0;
  for (int64_t c : counts.at(static_cast<size_t>(epoch))) n += c;
  return n;
}

double SigmaHistory::mean(int64_t epoch) const {
  const int64_t n = total(epoch);
  if (n == 0) return std::nan("");
  if (static_cast<size_t>(epoch) < sums.size()) return sums[static_cast<size_t>(epoch)] / static_cast<double>(n);
  double s = 0;
  const auto& row = counts[static_cast<size_t>(epoch)];
  for (size_t b = 0; b < row.size(); ++b) s += static_cast<double>(row[b]) * std::sqrt(edges[b] * edges[b + 1]);
  return s / static_cast<double>(n);
}

void SigmaHistory::add_epoch(const std::vector<float>& sigma, const std::vector<uint8_t>* mask, uint8_t select) {
  counts.push_back(histogram(sigma, edges, mask, select));
  double s = 0;
  for (size_t i = 0; i < sigma.size(); ++i)
    if (mask == nullptr || (*mask)[i] == select) s += sigma[i];
  if (sums.size() + 1 == counts.size()) sums.push_back(s);  // else sums were unknown before: keep them unknown
}

SigmaHistory merged(const SigmaHistory& a, const SigmaHistory& b) {
  DP_CHECK(a.edges == b.edges && a.counts.size() == b.counts.size(),
           "merging σ histories with different bins or epochs", "both must come from the same run");
  SigmaHistory m = a;
  for (size_t e = 0; e < m.counts.size(); ++e)
    for (size_t k = 0; k < m.counts[e].size(); ++k) m.counts[e][k] += b.counts[e][k];
  if (a.sums.size() == a.counts.size() && b.sums.size() == b.counts.size())
    for (size_t e = 0; e < m.sums.size(); ++e) m.sums[e] += b.sums[e];
  else
    m.sums.clear();
  return m;
}

std::vector<uint8_t> sample_groups(const data::NoiseMap& noise) {
  std::vector<uint8_t> g(static_cast<size_t>(noise.size()), kUntouched);
  for (size_t i = 0; i < g.size(); ++i) {
    if (noise.label[i] != noise.original_label[i]) g[i] = kMislabelled;
    else if (i < noise.is_corrupted.size() && noise.is_corrupted[i]) g[i] = kPermutedKept;
  }
  return g;
}

SigmaRecord::SigmaRecord(std::vector<double> edges) {
  for (auto& [name, h] : named()) h->edges = edges;
}

std::vector<std::pair<std::string, SigmaHistory*>> SigmaRecord::named() {
  return {{"inst", &inst}, {"inst_mislabelled", &inst_mislabelled}, {"inst_permuted_kept", &inst_permuted_kept},
          {"inst_untouched", &inst_untouched}, {"class", &cls}};
}

std::vector<std::pair<std::string, const SigmaHistory*>> SigmaRecord::named() const {
  std::vector<std::pair<std::string, const SigmaHistory*>> out;
  for (auto& [name, h] : const_cast<SigmaRecord*>(this)->named()) out.emplace_back(name, h);
  return out;
}

void SigmaRecord::record_epoch(const Tensor& theta_inst, const Tensor& theta_class,
                               const std::vector<uint8_t>& groups) {
  auto sigma_of = [](const Tensor& theta) {
    std::vector<float> s = theta.to_float_vector();
    for (float& v : s) v = std::exp(v);
    return s;
  };
  if (theta_inst.defined()) {
    const std::vector<float> s = sigma_of(theta_inst);
    const bool noisy = std::any_of(groups.begin(), groups.end(), [](uint8_t g) { return g != kUntouched; });
    // Groups only while they cover every epoch (a resumed run from before the groups has no early rows).
    const bool complete = inst_mislabelled.epochs() == inst.epochs();
    inst.add_epoch(s);
    if (noisy && complete && groups.size() == s.size()) {
      inst_mislabelled.add_epoch(s, &groups, kMislabelled);
      inst_permuted_kept.add_epoch(s, &groups, kPermutedKept);
      inst_untouched.add_epoch(s, &groups, kUntouched);
    }
  }
  if (theta_class.defined()) cls.add_epoch(sigma_of(theta_class));
}

}  // namespace dp::train
