#include "app/checkpoint_schema.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <set>

#include "engine/error.h"
#include "nets/registry.h"

namespace dp::app {

namespace {

// Dataset and attribute names: the only copy of the layout.
const std::string kModel = "model/";
const std::string kMomentum = "optimizer/momentum/";
const std::string kThetaClass = "data_parameters/theta_class";
const std::string kThetaInst = "data_parameters/theta_inst";
const std::string kMomentumSuffix = "_momentum";
const std::string kNoiseLabel = "noise/label";
const std::string kNoiseOriginal = "noise/original_label";
const std::string kNoiseCorrupted = "noise/is_corrupted";
const std::string kNoiseSource = "noise/image_source";
const std::string kSigmaEdges = "history/sigma_edges";
const std::string kSigmaPrefix = "history/sigma_";  // + group + "_counts" / "_sums"
const std::string kLossSum = "history/sample_loss_sum";
const std::string kLossCount = "history/sample_loss_count";

// More classes than any dataset dp-engine reads; the bound keeps a damaged attribute from
// building a net with billions of weights.
constexpr int64_t kMaxClasses = 100000;

const char* kDamagedHint =
    "the file is damaged or was not written by dp-train: use the run's checkpoint.h5 or best.h5 "
    "(best.h5 or an earlier copy when this one is broken)";

[[noreturn]] void invalid(const std::string& path, const std::string& what, const std::string& hint = kDamagedHint) {
  DP_THROW(fmt::format("{}: {}", path.empty() ? "checkpoint" : path, what), hint);
}

bool is_integer(DType t) { return t == DType::Int64 || t == DType::Int32 || t == DType::UInt8; }
bool is_float(DType t) { return t == DType::Float32 || t == DType::Float64; }

// Reads the file's tensors by name once, and remembers which ones the schema consumed, so that
// anything left over is reported instead of silently ignored.
class Datasets {
 public:
  Datasets(const io::TensorFile& f, const std::string& path) : path_(path) {
    for (const auto& [name, t] : f.tensors) by_name_.emplace(name, &t);
  }
  const Tensor* take(const std::string& name) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return nullptr;
    used_.insert(name);
    return it->second;
  }
  void expect_all_used() const {
    for (const auto& [name, t] : by_name_)
      if (!used_.count(name))
        invalid(path_, fmt::format("dataset /{} is not part of a format-{} checkpoint", name, kCheckpointFormatVersion));
  }

 private:
  std::string path_;
  std::map<std::string, const Tensor*> by_name_;
  std::set<std::string> used_;
};

void expect_shape(const std::string& path, const std::string& name, const Tensor& t, const Shape& want,
                  const std::string& because) {
  if (t.shape() != want)
    invalid(path, fmt::format("dataset /{} has shape {}, but {} needs {}", name, shape_str(t.shape()), because,
                              shape_str(want)));
}

void expect_dtype(const std::string& path, const std::string& name, const Tensor& t, DType want) {
  if (t.dtype() != want)
    invalid(path, fmt::format("dataset /{} is {}, expected {}", name, dtype_name(t.dtype()), dtype_name(want)));
}

std::vector<int64_t> integer_vector(const std::string& path, const std::string& name, const Tensor& t) {
  if (t.dim() != 1 || !is_integer(t.dtype()))
    invalid(path, fmt::format("dataset /{} must be a 1-D integer vector, found {} {}", name, dtype_name(t.dtype()),
                              shape_str(t.shape())));
  std::vector<double> v = t.to_double_vector();
  return std::vector<int64_t>(v.begin(), v.end());
}

void expect_range(const std::string& path, const std::string& name, const std::vector<int64_t>& v, int64_t lo,
                  int64_t hi, const std::string& what) {
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] < lo || v[i] >= hi)
      invalid(path, fmt::format("dataset /{}[{}] = {} is outside [{}, {}) ({})", name, i, v[i], lo, hi, what));
}

int64_t int_attr(const io::TensorFile& f, const std::string& path, const std::string& key, std::optional<int64_t> fallback) {
  auto it = f.ints.find(key);
  if (it != f.ints.end()) return it->second;
  if (!fallback) invalid(path, fmt::format("integer attribute '{}' is missing", key));
  return *fallback;
}

std::string string_attr(const io::TensorFile& f, const std::string& path, const std::string& key,
                        std::optional<std::string> fallback) {
  auto it = f.strings.find(key);
  if (it != f.strings.end()) return it->second;
  if (!fallback) invalid(path, fmt::format("string attribute '{}' is missing", key));
  return *fallback;
}

ThetaState read_theta(Datasets& d, const io::TensorFile& f, const std::string& path, const std::string& name,
                      const std::string& steps_key, int64_t length, const std::string& because) {
  ThetaState s;
  const Tensor* theta = d.take(name);
  const Tensor* momentum = d.take(name + kMomentumSuffix);
  if (theta == nullptr) {
    if (momentum != nullptr) invalid(path, fmt::format("dataset /{}{} is there without /{}", name, kMomentumSuffix, name));
    return s;
  }
  if (momentum == nullptr) invalid(path, fmt::format("dataset /{} has no /{}{}", name, name, kMomentumSuffix));
  expect_dtype(path, name, *theta, DType::Float32);
  expect_dtype(path, name + kMomentumSuffix, *momentum, DType::Float32);
  expect_shape(path, name, *theta, {length}, because);
  expect_shape(path, name + kMomentumSuffix, *momentum, {length}, because);
  s.theta = *theta;
  s.momentum = *momentum;
  s.steps = int_attr(f, path, steps_key, std::nullopt);
  if (s.steps < 0) invalid(path, fmt::format("attribute '{}' = {} is negative", steps_key, s.steps));
  return s;
}

void read_history(Datasets& d, const std::string& path, Checkpoint& c) {
  const Tensor* edges = d.take(kSigmaEdges);
  std::vector<std::pair<std::string, std::pair<const Tensor*, const Tensor*>>> groups;  // counts, sums
  bool any = false;
  for (const auto& [group, h] : c.history.named()) {
    const Tensor* counts = d.take(kSigmaPrefix + group + "_counts");
    const Tensor* sums = d.take(kSigmaPrefix + group + "_sums");
    groups.push_back({group, {counts, sums}});
    any = any || counts || sums;
  }
  if (edges == nullptr) {
    if (any) invalid(path, fmt::format("σ histograms without their bins (/{})", kSigmaEdges));
    return;
  }
  if (edges->dim() != 1 || edges->numel() < 2 || !is_float(edges->dtype()))
    invalid(path, fmt::format("dataset /{} must hold at least 2 floating-point bin edges, found {} {}", kSigmaEdges,
                              dtype_name(edges->dtype()), shape_str(edges->shape())));
  std::vector<double> e = edges->to_double_vector();
  for (size_t i = 0; i < e.size(); ++i)
    if (!std::isfinite(e[i]) || (i > 0 && !(e[i] > e[i - 1])))
      invalid(path, fmt::format("dataset /{} must be finite and increasing (entry {} is {})", kSigmaEdges, i, e[i]));
  const int64_t bins = edges->numel() - 1;
  c.history = train::SigmaRecord(e);
  auto histories = c.history.named();
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::string counts_name = kSigmaPrefix + groups[g].first + "_counts";
    const std::string sums_name = kSigmaPrefix + groups[g].first + "_sums";
    const auto [t, sums] = groups[g].second;
    train::SigmaHistory& h = *histories[g].second;
    if (t == nullptr) {
      if (sums) invalid(path, fmt::format("dataset /{} is there without /{}", sums_name, counts_name));
      continue;
    }
    if (t->dim() != 2 || !is_integer(t->dtype()))
      invalid(path, fmt::format("dataset /{} must be an integer [epochs, bins] matrix, found {} {}", counts_name,
                                dtype_name(t->dtype()), shape_str(t->shape())));
    expect_shape(path, counts_name, *t, {t->size(0), bins}, fmt::format("{} bin edges", e.size()));
    std::vector<double> flat = t->to_double_vector();
    for (int64_t row = 0; row < t->size(0); ++row) {
      std::vector<int64_t> r;
      for (int64_t b = 0; b < bins; ++b) {
        double v = flat[static_cast<size_t>(row * bins + b)];
        if (v < 0) invalid(path, fmt::format("dataset /{}[{}, {}] = {} is a negative count", counts_name, row, b, v));
        r.push_back(static_cast<int64_t>(v));
      }
      h.counts.push_back(std::move(r));
    }
    if (sums != nullptr) {
      if (sums->dim() != 1 || !is_float(sums->dtype()))
        invalid(path, fmt::format("dataset /{} must be a floating-point vector, found {} {}", sums_name,
                                  dtype_name(sums->dtype()), shape_str(sums->shape())));
      expect_shape(path, sums_name, *sums, {t->size(0)}, fmt::format("/{}", counts_name));
      h.sums = sums->to_double_vector();
    }
  }
  // The groups of the noise map partition the training set: all three, over every epoch, or none.
  const train::SigmaRecord& r = c.history;
  const int64_t group_epochs[] = {r.inst_mislabelled.epochs(), r.inst_permuted_kept.epochs(), r.inst_untouched.epochs()};
  for (int64_t ge : group_epochs)
    if (ge != group_epochs[0] || (ge != 0 && ge != r.inst.epochs()))
      invalid(path, fmt::format("the σ histograms of the sample groups (/{}inst_mislabelled_counts, ...) must all "
                                "cover the {} epochs of /{}inst_counts",
                                kSigmaPrefix, r.inst.epochs(), kSigmaPrefix));
}

Tensor history_tensor(const train::SigmaHistory& h) {
  const auto epochs = static_cast<int64_t>(h.counts.size());
  const auto bins = static_cast<int64_t>(h.edges.size()) - 1;
  std::vector<int64_t> flat;
  for (const auto& row : h.counts) flat.insert(flat.end(), row.begin(), row.end());
  return Tensor::from_vector(flat, {epochs, bins});
}

}  // namespace

const Tensor* Checkpoint::find_momentum(const std::string& parameter) const {
  for (const auto& [name, t] : momentum)
    if (name == parameter) return &t;
  return nullptr;
}

Checkpoint decode_checkpoint(const io::TensorFile& f, const std::string& path, const layers::Module* reference) {
  Checkpoint c;
  c.path = path;
  auto version = f.ints.find("format_version");
  if (version == f.ints.end() || version->second != kCheckpointFormatVersion)
    invalid(path,
            version == f.ints.end()
                ? std::string("not a dp-engine checkpoint (no format_version attribute)")
                : fmt::format("format_version {} is not {}, the version this dp-engine reads", version->second,
                              kCheckpointFormatVersion),
            "checkpoints come from dp-train's run.output folder (checkpoint.h5 or best.h5)");
  c.arch = string_attr(f, path, "arch", std::nullopt);
  c.num_classes = int_attr(f, path, "num_classes", std::nullopt);
  if (c.num_classes < 1 || c.num_classes > kMaxClasses)
    invalid(path, fmt::format("attribute num_classes = {} is outside [1, {}]", c.num_classes, kMaxClasses));
  c.epoch = int_attr(f, path, "epoch", std::nullopt);
  c.global_step = int_attr(f, path, "global_step", std::nullopt);
  if (c.epoch < 0 || c.global_step < 0)
    invalid(path, fmt::format("attributes epoch = {} and global_step = {} must not be negative", c.epoch, c.global_step));
  c.seed = int_attr(f, path, "seed", 0);
  auto best = f.floats.find("best_val_top1");
  c.best_val_top1 = best != f.floats.end() ? best->second : -1.0;
  c.best_epoch = int_attr(f, path, "best_epoch", 0);
  if (c.best_epoch < 0 || c.best_epoch > c.epoch)
    invalid(path, fmt::format("attribute best_epoch = {} is outside [0, epoch = {}]", c.best_epoch, c.epoch));
  c.noise_protocol = string_attr(f, path, "noise_protocol", "none");
  c.config = string_attr(f, path, "config", "");
  c.rng = string_attr(f, path, "rng", "");

  layers::ModulePtr built;
  if (reference == nullptr) {
    try {
      built = nets::make_net(c.arch, c.num_classes);
    } catch (const Error& e) {
      invalid(path, fmt::format("attribute arch = '{}' is not a net this dp-engine builds ({})", c.arch, e.message()));
    }
    reference = built.get();
  }
  const std::string net = fmt::format("a {} with {} classes", c.arch, c.num_classes);
  Datasets d(f, path);

  // The model: exactly the reference's state dict, entry by entry.
  layers::StateDict want = reference->state_dict();
  for (const auto& [name, t] : f.tensors) {
    if (name.rfind(kModel, 0) != 0) continue;
    const std::string leaf = name.substr(kModel.size());
    const Tensor* w = want.find(leaf);
    if (w == nullptr) invalid(path, fmt::format("dataset /{} is not a tensor of {}", name, net));
    expect_shape(path, name, t, w->shape(), net);
    expect_dtype(path, name, t, w->dtype());
    c.model.insert(leaf, t);
    d.take(name);
  }
  for (const auto& [name, t] : want)
    if (!c.model.contains(name)) invalid(path, fmt::format("dataset /{}{} is missing ({} has it)", kModel, name, net));

  // Momentum buffers: one per parameter at most, shaped like it.
  for (const auto& [name, p] : reference->named_parameters()) {
    const Tensor* m = d.take(kMomentum + name);
    if (m == nullptr) continue;
    expect_shape(path, kMomentum + name, *m, p.shape(), "the parameter " + name + " of " + net);
    expect_dtype(path, kMomentum + name, *m, p.dtype());
    c.momentum.emplace_back(name, *m);
  }

  // The noise map: four vectors of the training-set size.
  const Tensor* label = d.take(kNoiseLabel);
  const Tensor* original = d.take(kNoiseOriginal);
  const Tensor* corrupted = d.take(kNoiseCorrupted);
  const Tensor* source = d.take(kNoiseSource);
  if (label || original || corrupted || source) {
    for (const auto& [name, t] : {std::pair{kNoiseLabel, label}, {kNoiseOriginal, original},
                                  {kNoiseCorrupted, corrupted}, {kNoiseSource, source}})
      if (t == nullptr) invalid(path, fmt::format("the noise map has no /{}", name));
    data::NoiseMap n;
    n.protocol = c.noise_protocol;
    n.label = integer_vector(path, kNoiseLabel, *label);
    const int64_t size = n.size();
    const std::string because = fmt::format("the training set of /{} ({} samples)", kNoiseLabel, size);
    expect_shape(path, kNoiseOriginal, *original, {size}, because);
    expect_shape(path, kNoiseCorrupted, *corrupted, {size}, because);
    expect_shape(path, kNoiseSource, *source, {size}, because);
    n.original_label = integer_vector(path, kNoiseOriginal, *original);
    std::vector<int64_t> flags = integer_vector(path, kNoiseCorrupted, *corrupted);
    n.image_source = integer_vector(path, kNoiseSource, *source);
    const std::string classes = fmt::format("num_classes = {}", c.num_classes);
    expect_range(path, kNoiseLabel, n.label, 0, c.num_classes, classes);
    expect_range(path, kNoiseOriginal, n.original_label, 0, c.num_classes, classes);
    expect_range(path, kNoiseCorrupted, flags, 0, 2, "a flag");
    expect_range(path, kNoiseSource, n.image_source, 0, size, "a training-set index");
    n.is_corrupted.assign(flags.begin(), flags.end());
    c.noise = std::move(n);
  }

  c.theta_class = read_theta(d, f, path, kThetaClass, "class_param_steps", c.num_classes,
                             fmt::format("num_classes = {}", c.num_classes));
  if (const Tensor* t = f.find(kThetaInst); t != nullptr && !c.noise)
    invalid(path, fmt::format("dataset /{} is there without the noise map that gives the training-set size", kThetaInst));
  c.theta_inst = read_theta(d, f, path, kThetaInst, "inst_param_steps", c.train_size(),
                            fmt::format("the training set of /{} ({} samples)", kNoiseLabel, c.train_size()));
  read_history(d, path, c);
  const Tensor* loss_sum = d.take(kLossSum);
  const Tensor* loss_count = d.take(kLossCount);
  if (loss_sum || loss_count) {
    if (!loss_sum || !loss_count)
      invalid(path, fmt::format("dataset /{} is there without /{}", loss_sum ? kLossSum : kLossCount,
                                loss_sum ? kLossCount : kLossSum));
    if (!c.noise) invalid(path, fmt::format("dataset /{} is there without the noise map that gives the training-set size", kLossSum));
    const std::string because = fmt::format("the training set of /{} ({} samples)", kNoiseLabel, c.train_size());
    for (const auto& [name, t] : {std::pair{kLossSum, loss_sum}, {kLossCount, loss_count}}) {
      expect_dtype(path, name, *t, DType::Float32);
      expect_shape(path, name, *t, {c.train_size()}, because);
    }
    c.sample_loss_sum = *loss_sum;
    c.sample_loss_count = *loss_count;
  }
  d.expect_all_used();
  return c;
}

Checkpoint read_checkpoint(const std::string& path, const layers::Module* reference) {
  return decode_checkpoint(io::read_tensor_file(path), path, reference);
}

io::TensorFile encode_checkpoint(const Checkpoint& c) {
  io::TensorFile f;
  for (const auto& [name, t] : c.model) f.tensors.emplace_back(kModel + name, t);
  for (const auto& [name, t] : c.momentum) f.tensors.emplace_back(kMomentum + name, t);
  auto theta = [&](const ThetaState& s, const std::string& name, const std::string& steps_key) {
    if (!s.defined()) return;
    f.tensors.emplace_back(name, s.theta);
    f.tensors.emplace_back(name + kMomentumSuffix, s.momentum);
    f.ints[steps_key] = s.steps;
  };
  theta(c.theta_class, kThetaClass, "class_param_steps");
  theta(c.theta_inst, kThetaInst, "inst_param_steps");
  if (c.noise) {
    const data::NoiseMap& n = *c.noise;
    f.tensors.emplace_back(kNoiseLabel, Tensor::from_vector(n.label, {n.size()}));
    f.tensors.emplace_back(kNoiseOriginal, Tensor::from_vector(n.original_label, {n.size()}));
    f.tensors.emplace_back(kNoiseCorrupted, Tensor::from_vector(n.is_corrupted, {n.size()}));
    f.tensors.emplace_back(kNoiseSource, Tensor::from_vector(n.image_source, {n.size()}));
  }
  if (!c.history.empty()) {
    const std::vector<double>& edges = c.history.inst.edges;
    f.tensors.emplace_back(kSigmaEdges, Tensor::from_vector(edges, {static_cast<int64_t>(edges.size())}));
    for (const auto& [group, h] : c.history.named()) {
      if (h->counts.empty()) continue;
      // The groups only as a whole over every epoch (what read_history checks).
      if (group.rfind("inst_", 0) == 0 && !c.history.has_groups()) continue;
      f.tensors.emplace_back(kSigmaPrefix + group + "_counts", history_tensor(*h));
      if (h->sums.size() == h->counts.size())
        f.tensors.emplace_back(kSigmaPrefix + group + "_sums",
                               Tensor::from_vector(h->sums, {static_cast<int64_t>(h->sums.size())}));
    }
  }
  if (c.sample_loss_sum.defined()) {
    f.tensors.emplace_back(kLossSum, c.sample_loss_sum);
    f.tensors.emplace_back(kLossCount, c.sample_loss_count);
  }
  f.ints["format_version"] = kCheckpointFormatVersion;
  f.ints["epoch"] = c.epoch;
  f.ints["global_step"] = c.global_step;
  f.ints["seed"] = c.seed;
  f.ints["num_classes"] = c.num_classes;
  f.floats["best_val_top1"] = c.best_val_top1;
  f.ints["best_epoch"] = c.best_epoch;
  f.strings["arch"] = c.arch;
  f.strings["noise_protocol"] = c.noise ? c.noise->protocol : c.noise_protocol;
  f.strings["config"] = c.config;
  f.strings["rng"] = c.rng;
  return f;
}

void write_checkpoint(const std::string& path, const Checkpoint& c) { io::write_tensor_file_atomic(path, encode_checkpoint(c)); }

layers::ModulePtr make_checkpoint_model(const Checkpoint& c) {
  layers::ModulePtr model = nets::make_net(c.arch, c.num_classes);
  model->load_state_dict(c.model, /*strict=*/true);
  return model;
}

}  // namespace dp::app
