#include "train/run/sigma_record.h"

#include <fmt/format.h>

#include <cmath>

namespace dp::train {

namespace {

Tensor counts_tensor(const SigmaHistory& h) {
  const auto bins = static_cast<int64_t>(h.edges.size()) - 1;
  std::vector<int64_t> flat;
  for (const auto& row : h.counts) flat.insert(flat.end(), row.begin(), row.end());
  return Tensor::from_vector(flat, {h.epochs(), bins});
}

void write_history(io::TensorFile& f, const std::string& group, const SigmaHistory& h) {
  if (h.counts.empty()) return;
  f.tensors.emplace_back("history/sigma_" + group + "_counts", counts_tensor(h));
  if (h.sums.size() == h.counts.size())
    f.tensors.emplace_back("history/sigma_" + group + "_sums",
                           Tensor::from_vector(h.sums, {static_cast<int64_t>(h.sums.size())}));
}

void read_history(const io::TensorFile& f, const std::string& group, SigmaHistory& h) {
  h.counts.clear();
  h.sums.clear();
  const Tensor* t = f.find("history/sigma_" + group + "_counts");
  if (t == nullptr || t->dim() != 2 || t->size(1) + 1 != static_cast<int64_t>(h.edges.size())) return;
  const std::vector<double> v = t->to_double_vector();
  for (int64_t e = 0; e < t->size(0); ++e)
    h.counts.emplace_back(v.begin() + e * t->size(1), v.begin() + (e + 1) * t->size(1));
  if (const Tensor* s = f.find("history/sigma_" + group + "_sums"); s != nullptr && s->numel() == t->size(0))
    h.sums = s->to_double_vector();
}

std::string named(const char* what, const SigmaHistory& h) {
  return h.epochs() > 0 ? fmt::format("{} ({})", what, h.total(h.epochs() - 1)) : what;
}

}  // namespace

std::vector<uint8_t> sample_groups(const data::NoiseMap& noise) {
  std::vector<uint8_t> g(static_cast<size_t>(noise.size()), kUntouched);
  for (size_t i = 0; i < g.size(); ++i) {
    if (noise.label[i] != noise.original_label[i]) g[i] = kMislabelled;
    else if (!noise.is_corrupted.empty() && noise.is_corrupted[i]) g[i] = kPermutedKept;
  }
  return g;
}

SigmaRecord::SigmaRecord(std::vector<double> edges) {
  for (SigmaHistory* h : {&inst, &inst_mislabelled, &inst_permuted_kept, &inst_untouched, &cls}) h->edges = edges;
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
    inst.add_epoch(s);
    noisy = false;
    for (uint8_t g : groups) noisy = noisy || g == kMislabelled;
    if (noisy && groups.size() == s.size()) {
      inst_mislabelled.add_epoch(s, &groups, kMislabelled);
      inst_permuted_kept.add_epoch(s, &groups, kPermutedKept);
      inst_untouched.add_epoch(s, &groups, kUntouched);
    }
  }
  if (theta_class.defined()) cls.add_epoch(sigma_of(theta_class));
}

void SigmaRecord::write(io::TensorFile& f) const {
  f.tensors.emplace_back("history/sigma_edges",
                         Tensor::from_vector(inst.edges, {static_cast<int64_t>(inst.edges.size())}));
  write_history(f, "inst", inst);
  // The groups only while they cover every epoch (a resumed pre-groups run has no early rows).
  if (inst_mislabelled.epochs() == inst.epochs()) {
    write_history(f, "inst_mislabelled", inst_mislabelled);
    write_history(f, "inst_permuted_kept", inst_permuted_kept);
    write_history(f, "inst_untouched", inst_untouched);
  }
  write_history(f, "class", cls);
}

void SigmaRecord::read(const io::TensorFile& f) {
  if (const Tensor* e = f.find("history/sigma_edges"); e != nullptr && e->numel() >= 2)
    *this = SigmaRecord(e->to_double_vector());
  read_history(f, "inst", inst);
  read_history(f, "inst_mislabelled", inst_mislabelled);
  read_history(f, "inst_permuted_kept", inst_permuted_kept);
  read_history(f, "inst_untouched", inst_untouched);
  read_history(f, "class", cls);
  noisy = inst_mislabelled.epochs() > 0 && inst_mislabelled.epochs() == inst.epochs();
  if (!noisy) inst_mislabelled.counts.clear(), inst_permuted_kept.counts.clear(), inst_untouched.counts.clear();
}

std::vector<inspect::SigmaPanel> SigmaRecord::label_panels() const {
  if (inst.epochs() == 0) return {};
  if (!noisy) return {{named("all samples", inst), inst}};
  const SigmaHistory clean = merged(inst_untouched, inst_permuted_kept);
  return {{named("correct labels", clean), clean}, {named("wrong labels", inst_mislabelled), inst_mislabelled}};
}

std::vector<inspect::SigmaPanel> SigmaRecord::permuted_panels() const {
  if (!noisy) return {};
  const SigmaHistory permuted = merged(inst_mislabelled, inst_permuted_kept);
  return {{named("untouched", inst_untouched), inst_untouched}, {named("noise protocol applied", permuted), permuted}};
}

std::vector<inspect::SigmaPanel> SigmaRecord::class_panels() const {
  if (cls.epochs() == 0) return {};
  return {{named("classes", cls), cls}};
}

}  // namespace dp::train
