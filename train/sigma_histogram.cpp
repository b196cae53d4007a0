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

namespace {

const std::string kSigmaEdges = "history/sigma_edges";
const std::string kSigmaPrefix = "history/sigma_";  // + group + "_counts" / "_sums"

bool is_integer(DType t) { return t == DType::Int64 || t == DType::Int32 || t == DType::UInt8; }
bool is_float(DType t) { return t == DType::Float32 || t == DType::Float64; }

Tensor counts_tensor(const SigmaHistory& h) {
  const auto epochs = static_cast<int64_t>(h.counts.size());
  const auto bins = static_cast<int64_t>(h.edges.size()) - 1;
  std::vector<int64_t> flat;
  for (const auto& row : h.counts) flat.insert(flat.end(), row.begin(), row.end());
  return Tensor::from_vector(flat, {epochs, bins});
}

}  // namespace

void SigmaRecord::save(StateWriter& out) const {
  if (empty()) return;
  out.tensor(kSigmaEdges, Tensor::from_vector(inst.edges, {static_cast<int64_t>(inst.edges.size())}));
  for (const auto& [group, h] : named()) {
    if (h->counts.empty()) continue;
    if (group.rfind("inst_", 0) == 0 && !has_groups()) continue;
    out.tensor(kSigmaPrefix + group + "_counts", counts_tensor(*h));
    if (h->sums.size() == h->counts.size())
      out.tensor(kSigmaPrefix + group + "_sums", Tensor::from_vector(h->sums, {static_cast<int64_t>(h->sums.size())}));
  }
}

void SigmaRecord::load(StateReader& in) {
  const Tensor* edges = in.take(kSigmaEdges);
  std::vector<std::pair<std::string, std::pair<const Tensor*, const Tensor*>>> groups;  // counts, sums
  bool any = false;
  for (const auto& [group, h] : named()) {
    const Tensor* counts = in.take(kSigmaPrefix + group + "_counts");
    const Tensor* sums = in.take(kSigmaPrefix + group + "_sums");
    groups.push_back({group, {counts, sums}});
    any = any || counts || sums;
  }
  if (edges == nullptr) {
    if (any) in.invalid(fmt::format("σ histograms without their bins (/{})", kSigmaEdges));
    *this = SigmaRecord();
    return;
  }
  if (edges->dim() != 1 || edges->numel() < 2 || !is_float(edges->dtype()))
    in.invalid(fmt::format("dataset /{} must hold at least 2 floating-point bin edges, found {} {}", kSigmaEdges,
                           dtype_name(edges->dtype()), shape_str(edges->shape())));
  std::vector<double> e = edges->to_double_vector();
  for (size_t i = 0; i < e.size(); ++i)
    if (!std::isfinite(e[i]) || (i > 0 && !(e[i] > e[i - 1])))
      in.invalid(fmt::format("dataset /{} must be finite and increasing (entry {} is {})", kSigmaEdges, i, e[i]));
  const int64_t bins = edges->numel() - 1;
  SigmaRecord r(e);
  auto histories = r.named();
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::string counts_name = kSigmaPrefix + groups[g].first + "_counts";
    const std::string sums_name = kSigmaPrefix + groups[g].first + "_sums";
    const auto [t, sums] = groups[g].second;
    SigmaHistory& h = *histories[g].second;
    if (t == nullptr) {
      if (sums) in.invalid(fmt::format("dataset /{} is there without /{}", sums_name, counts_name));
      continue;
    }
    if (t->dim() != 2 || !is_integer(t->dtype()))
      in.invalid(fmt::format("dataset /{} must be an integer [epochs, bins] matrix, found {} {}", counts_name,
                             dtype_name(t->dtype()), shape_str(t->shape())));
    in.expect_shape(counts_name, *t, {t->size(0), bins}, fmt::format("{} bin edges", e.size()));
    std::vector<double> flat = t->to_double_vector();
    for (int64_t row = 0; row < t->size(0); ++row) {
      std::vector<int64_t> values;
      for (int64_t b = 0; b < bins; ++b) {
        const double v = flat[static_cast<size_t>(row * bins + b)];
        if (v < 0) in.invalid(fmt::format("dataset /{}[{}, {}] = {} is a negative count", counts_name, row, b, v));
        values.push_back(static_cast<int64_t>(v));
      }
      h.counts.push_back(std::move(values));
    }
    if (sums != nullptr) {
      if (sums->dim() != 1 || !is_float(sums->dtype()))
        in.invalid(fmt::format("dataset /{} must be a floating-point vector, found {} {}", sums_name,
                               dtype_name(sums->dtype()), shape_str(sums->shape())));
      in.expect_shape(sums_name, *sums, {t->size(0)}, fmt::format("/{}", counts_name));
      h.sums = sums->to_double_vector();
    }
  }
  // The groups of the noise map partition the training set: all three, over every epoch, or none.
  const int64_t group_epochs[] = {r.inst_mislabelled.epochs(), r.inst_permuted_kept.epochs(),
                                  r.inst_untouched.epochs()};
  for (int64_t ge : group_epochs)
    if (ge != group_epochs[0] || (ge != 0 && ge != r.inst.epochs()))
      in.invalid(fmt::format("the σ histograms of the sample groups (/{}inst_mislabelled_counts, ...) must all "
                             "cover the {} epochs of /{}inst_counts",
                             kSigmaPrefix, r.inst.epochs(), kSigmaPrefix));
  *this = std::move(r);
}

}  // namespace dp::train
