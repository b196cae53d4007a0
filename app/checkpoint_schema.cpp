#include "app/checkpoint_schema.h"

#include <fmt/format.h>

#include <map>
#include <set>

#include "engine/error.h"
#include "nets/registry.h"

namespace dp::app {

namespace {

const std::string kModel = "model/";
const std::string kNoiseLabel = "noise/label";
const std::string kNoiseOriginal = "noise/original_label";
const std::string kNoiseCorrupted = "noise/is_corrupted";
const std::string kNoiseSource = "noise/image_source";

// More classes than any dataset dp-engine reads; the bound keeps a damaged attribute from
// building a net with billions of weights.
constexpr int64_t kMaxClasses = 100000;

const char* kDamagedHint =
    "the file is damaged or was not written by dp-train: use the run's checkpoint.h5 or best.h5 "
    "(best.h5 or an earlier copy when this one is broken)";

[[noreturn]] void invalid(const std::string& path, const std::string& what, const std::string& hint = kDamagedHint) {
  DP_THROW(fmt::format("{}: {}", path.empty() ? "checkpoint" : path, what), hint);
}

// The owners write into the file's tensors and root attributes.
class FileWriter : public StateWriter {
 public:
  explicit FileWriter(io::TensorFile& f) : f_(f) {}
  void tensor(const std::string& name, const Tensor& value) override { f_.tensors.emplace_back(name, value); }
  void integer(const std::string& name, int64_t value) override { f_.ints[name] = value; }
  void real(const std::string& name, double value) override { f_.floats[name] = value; }
  void text(const std::string& name, const std::string& value) override { f_.strings[name] = value; }

 private:
  io::TensorFile& f_;
};

// The owners read from the file; what none of them took is reported, not silently ignored.
class FileReader : public StateReader {
 public:
  FileReader(const io::TensorFile& f, const std::string& path) : f_(f), path_(path) {
    for (const auto& [name, t] : f.tensors) by_name_.emplace(name, &t);
  }
  const Tensor* take(const std::string& name) override {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return nullptr;
    used_.insert(name);
    return it->second;
  }
  bool contains(const std::string& name) const override { return by_name_.count(name) != 0; }
  std::optional<int64_t> integer(const std::string& name) const override { return find(f_.ints, name); }
  std::optional<double> real(const std::string& name) const override { return find(f_.floats, name); }
  std::optional<std::string> text(const std::string& name) const override { return find(f_.strings, name); }
  [[noreturn]] void invalid(const std::string& what) const override { app::invalid(path_, what); }

  void expect_all_used() const {
    for (const auto& [name, t] : by_name_)
      if (!used_.count(name))
        invalid(fmt::format("dataset /{} is not part of a format-{} checkpoint", name, kCheckpointFormatVersion));
  }

 private:
  template <class T>
  static std::optional<T> find(const std::map<std::string, T>& m, const std::string& key) {
    auto it = m.find(key);
    return it == m.end() ? std::nullopt : std::optional<T>(it->second);
  }
  const io::TensorFile& f_;
  std::string path_;
  std::map<std::string, const Tensor*> by_name_;
  std::set<std::string> used_;
};

std::string required_text(const StateReader& in, const std::string& key) {
  std::optional<std::string> v = in.text(key);
  if (!v) in.invalid(fmt::format("string attribute '{}' is missing", key));
  return *v;
}

// ---- the noise map: four vectors of the training-set size ----

void save_noise_map(StateWriter& out, const data::NoiseMap& n) {
  out.tensor(kNoiseLabel, Tensor::from_vector(n.label, {n.size()}));
  out.tensor(kNoiseOriginal, Tensor::from_vector(n.original_label, {n.size()}));
  out.tensor(kNoiseCorrupted, Tensor::from_vector(n.is_corrupted, {n.size()}));
  out.tensor(kNoiseSource, Tensor::from_vector(n.image_source, {n.size()}));
}

std::vector<int64_t> integer_vector(const StateReader& in, const std::string& name, const Tensor& t) {
  const bool integer = t.dtype() == DType::Int64 || t.dtype() == DType::Int32 || t.dtype() == DType::UInt8;
  if (t.dim() != 1 || !integer)
    in.invalid(fmt::format("dataset /{} must be a 1-D integer vector, found {} {}", name, dtype_name(t.dtype()),
                           shape_str(t.shape())));
  std::vector<double> v = t.to_double_vector();
  return std::vector<int64_t>(v.begin(), v.end());
}

void expect_range(const StateReader& in, const std::string& name, const std::vector<int64_t>& v, int64_t lo,
                  int64_t hi, const std::string& what) {
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] < lo || v[i] >= hi)
      in.invalid(fmt::format("dataset /{}[{}] = {} is outside [{}, {}) ({})", name, i, v[i], lo, hi, what));
}

std::optional<data::NoiseMap> read_noise_map(StateReader& in, int64_t num_classes, const std::string& protocol) {
  const Tensor* label = in.take(kNoiseLabel);
  const Tensor* original = in.take(kNoiseOriginal);
  const Tensor* corrupted = in.take(kNoiseCorrupted);
  const Tensor* source = in.take(kNoiseSource);
  if (!label && !original && !corrupted && !source) return std::nullopt;
  for (const auto& [name, t] : {std::pair{kNoiseLabel, label}, {kNoiseOriginal, original},
                                {kNoiseCorrupted, corrupted}, {kNoiseSource, source}})
    if (t == nullptr) in.invalid(fmt::format("the noise map has no /{}", name));
  data::NoiseMap n;
  n.protocol = protocol;
  n.label = integer_vector(in, kNoiseLabel, *label);
  const int64_t size = n.size();
  const std::string because = fmt::format("the training set of /{} ({} samples)", kNoiseLabel, size);
  in.expect_shape(kNoiseOriginal, *original, {size}, because);
  in.expect_shape(kNoiseCorrupted, *corrupted, {size}, because);
  in.expect_shape(kNoiseSource, *source, {size}, because);
  n.original_label = integer_vector(in, kNoiseOriginal, *original);
  std::vector<int64_t> flags = integer_vector(in, kNoiseCorrupted, *corrupted);
  n.image_source = integer_vector(in, kNoiseSource, *source);
  const std::string classes = fmt::format("num_classes = {}", num_classes);
  expect_range(in, kNoiseLabel, n.label, 0, num_classes, classes);
  expect_range(in, kNoiseOriginal, n.original_label, 0, num_classes, classes);
  expect_range(in, kNoiseCorrupted, flags, 0, 2, "a flag");
  expect_range(in, kNoiseSource, n.image_source, 0, size, "a training-set index");
  n.is_corrupted.assign(flags.begin(), flags.end());
  return n;
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
  FileReader in(f, path);
  const std::optional<int64_t> version = in.integer("format_version");
  if (version != kCheckpointFormatVersion)
    invalid(path,
            !version ? std::string("not a dp-engine checkpoint (no format_version attribute)")
                     : fmt::format("format_version {} is not {}, the version this dp-engine reads", *version,
                                   kCheckpointFormatVersion),
            "checkpoints come from dp-train's run.output folder (checkpoint.h5 or best.h5)");
  c.arch = required_text(in, "arch");
  c.num_classes = in.integer_in("num_classes", 1, kMaxClasses, std::nullopt);
  c.noise_protocol = in.text("noise_protocol").value_or("none");
  c.config = in.text("config").value_or("");
  c.rng = in.text("rng").value_or("");
  c.data_fingerprint = in.text("data_fingerprint").value_or("");

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

  c.progress.load(in);
  c.model = reference->read_state(in, kModel, net);
  c.momentum = train::read_momentum_state(in, reference->named_parameters(), net);
  c.noise = read_noise_map(in, c.num_classes, c.noise_protocol);
  c.theta_class = ThetaState::read(in, train::ThetaKind::kClass, c.num_classes,
                                   fmt::format("num_classes = {}", c.num_classes));
  const std::string inst = ThetaState::dataset(train::ThetaKind::kInstance);
  if (in.contains(inst) && !c.noise)
    invalid(path, fmt::format("dataset /{} is there without the noise map that gives the training-set size", inst));
  c.theta_inst = ThetaState::read(in, train::ThetaKind::kInstance, c.train_size(),
                                  fmt::format("the training set of /{} ({} samples)", kNoiseLabel, c.train_size()));
  c.history.load(in);
  if (in.contains(train::SampleLossState::kSum) && !c.noise)
    invalid(path, fmt::format("dataset /{} is there without the noise map that gives the training-set size",
                              train::SampleLossState::kSum));
  c.sample_loss = train::SampleLossState::read(in, c.train_size(),
                                               fmt::format("the training set of /{} ({} samples)", kNoiseLabel, c.train_size()));
  in.expect_all_used();
  return c;
}

Checkpoint read_checkpoint(const std::string& path, const layers::Module* reference) {
  return decode_checkpoint(io::read_tensor_file(path), path, reference);
}

io::TensorFile encode_checkpoint(const Checkpoint& c) {
  io::TensorFile f;
  FileWriter out(f);
  c.model.save_state(out, kModel);
  train::save_momentum_state(out, c.momentum);
  c.theta_class.save(out, train::ThetaKind::kClass);
  c.theta_inst.save(out, train::ThetaKind::kInstance);
  if (c.noise) save_noise_map(out, *c.noise);
  c.history.save(out);
  c.sample_loss.save(out);
  c.progress.save(out);
  out.integer("format_version", kCheckpointFormatVersion);
  out.integer("num_classes", c.num_classes);
  out.text("arch", c.arch);
  out.text("noise_protocol", c.noise ? c.noise->protocol : c.noise_protocol);
  out.text("config", c.config);
  out.text("rng", c.rng);
  if (!c.data_fingerprint.empty()) out.text("data_fingerprint", c.data_fingerprint);
  return f;
}

void write_checkpoint(const std::string& path, const Checkpoint& c) { io::write_tensor_file_atomic(path, encode_checkpoint(c)); }

layers::ModulePtr make_checkpoint_model(const Checkpoint& c) {
  layers::ModulePtr model = nets::make_net(c.arch, c.num_classes);
  model->load_state_dict(c.model, /*strict=*/true);
  return model;
}

}  // namespace dp::app
