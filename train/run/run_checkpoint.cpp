// The checkpoint of a run (format_version 1), an HDF5 file laid out for h5py users:
//   /model/<name>                       parameters and buffers, torchvision/reference names
//   /optimizer/momentum/<name>          SGD momentum buffers (absent before a parameter's first step)
//   /data_parameters/theta_class        log-space θ (and _momentum), when learnt
//   /data_parameters/theta_inst         log-space θ (and _momentum), when learnt
//   /noise/{label,original_label,is_corrupted,image_source}   the training set's noise map
//   /history/{sigma_edges,sigma_inst_counts,sigma_class_counts}  σ histograms per epoch
//   attributes: format_version, epoch (completed), global_step, seed, class_param_steps,
//               inst_param_steps, best_val_top1, arch, num_classes, noise_protocol, config
// Randomness is counter-based (Philox keyed by seed, epoch, sample index), so seed + epoch is
// the whole RNG state.
#include <fmt/format.h>

#include "engine/error.h"
#include "train/io/checkpoint_file.h"
#include "train/run/trainer.h"

namespace dp::train {

namespace {

constexpr int64_t kFormatVersion = 1;

Tensor history_tensor(const inspect::SigmaHistory& h) {
  const auto epochs = static_cast<int64_t>(h.counts.size());
  const auto bins = static_cast<int64_t>(h.edges.size()) - 1;
  std::vector<int64_t> flat;
  for (const auto& row : h.counts) flat.insert(flat.end(), row.begin(), row.end());
  return Tensor::from_vector(flat, {epochs, bins});
}

void history_from(const io::TensorFile& f, const std::string& name, inspect::SigmaHistory& h) {
  h.counts.clear();
  const Tensor* t = f.find(name);
  if (t == nullptr || t->dim() != 2) return;
  std::vector<double> v = t->to_double_vector();
  for (int64_t e = 0; e < t->size(0); ++e) {
    std::vector<int64_t> row;
    for (int64_t b = 0; b < t->size(1); ++b) row.push_back(static_cast<int64_t>(v[e * t->size(1) + b]));
    h.counts.push_back(row);
  }
}

}  // namespace

void Trainer::save_checkpoint(const std::string& path) const {
  io::TensorFile f;
  for (const auto& [name, t] : model_->state_dict()) f.tensors.emplace_back("model/" + name, t);
  auto named = model_->named_parameters();
  const auto& bufs = sgd_->momentum_buffers();
  for (size_t i = 0; i < named.size() && i < bufs.size(); ++i)
    if (bufs[i].defined()) f.tensors.emplace_back("optimizer/momentum/" + named[i].first, bufs[i]);
  if (data_params_->learn_class()) {
    f.tensors.emplace_back("data_parameters/theta_class", data_params_->theta_class());
    f.tensors.emplace_back("data_parameters/theta_class_momentum",
                           data_params_->class_optimizer()->momentum_buffer());
    f.ints["class_param_steps"] = data_params_->class_optimizer()->steps();
  }
  if (data_params_->learn_inst()) {
    f.tensors.emplace_back("data_parameters/theta_inst", data_params_->theta_inst());
    f.tensors.emplace_back("data_parameters/theta_inst_momentum", data_params_->inst_optimizer()->momentum_buffer());
    f.ints["inst_param_steps"] = data_params_->inst_optimizer()->steps();
  }
  const data::NoiseMap& n = data_.noise;
  f.tensors.emplace_back("noise/label", Tensor::from_vector(n.label, {n.size()}));
  f.tensors.emplace_back("noise/original_label", Tensor::from_vector(n.original_label, {n.size()}));
  f.tensors.emplace_back("noise/is_corrupted", Tensor::from_vector(n.is_corrupted, {n.size()}));
  f.tensors.emplace_back("noise/image_source", Tensor::from_vector(n.image_source, {n.size()}));
  f.tensors.emplace_back("history/sigma_edges",
                         Tensor::from_vector(inst_history_.edges, {static_cast<int64_t>(inst_history_.edges.size())}));
  if (!inst_history_.counts.empty()) f.tensors.emplace_back("history/sigma_inst_counts", history_tensor(inst_history_));
  if (!class_history_.counts.empty())
    f.tensors.emplace_back("history/sigma_class_counts", history_tensor(class_history_));
  f.ints["format_version"] = kFormatVersion;
  f.ints["epoch"] = epoch_;
  f.ints["global_step"] = global_step_;
  f.ints["seed"] = static_cast<int64_t>(rc_.seed);
  f.ints["num_classes"] = data_.num_classes;
  f.floats["best_val_top1"] = best_top1_;
  f.strings["arch"] = rc_.arch;
  f.strings["noise_protocol"] = n.protocol;
  f.strings["config"] = config_.resolved_toml();
  f.strings["rng"] = "philox4x32-10 keyed by (seed, epoch, sample index): seed and epoch are the state";
  io::write_tensor_file_atomic(path, f);
}

void Trainer::load_checkpoint(const std::string& path) {
  io::TensorFile f = io::read_tensor_file(path);
  auto version = f.ints.find("format_version");
  DP_CHECK(version != f.ints.end() && version->second == kFormatVersion,
           fmt::format("{} is not a dp-engine checkpoint of format version {}", path, kFormatVersion),
           "checkpoints come from dp-train's run.output folder (checkpoint.h5 or best.h5)");
  DP_CHECK(f.strings.count("arch") && f.strings.at("arch") == rc_.arch,
           fmt::format("{} holds a '{}' model but the config asks for '{}'", path,
                       f.strings.count("arch") ? f.strings.at("arch") : "?", rc_.arch),
           "resume with the config the run was started with");
  nn::StateDict state;
  for (const auto& [name, t] : f.tensors)
    if (name.rfind("model/", 0) == 0) state.insert(name.substr(6), t);
  model_->load_state_dict(state, /*strict=*/true);
  auto named = model_->named_parameters();
  auto& bufs = sgd_->momentum_buffers();
  for (size_t i = 0; i < named.size() && i < bufs.size(); ++i) {
    const Tensor* m = f.find("optimizer/momentum/" + named[i].first);
    bufs[i] = m ? m->to(device_).clone() : Tensor();
  }
  auto load_dp = [&](const char* name, const Tensor& theta, SparseSGD* opt, const char* steps) {
    if (!theta.defined()) return;
    Tensor target = theta;
    io::load_checked(f, fmt::format("data_parameters/{}", name), target, path);
    io::load_checked(f, fmt::format("data_parameters/{}_momentum", name), opt->momentum_buffer(), path);
    DP_CHECK(f.ints.count(steps), fmt::format("{}: attribute {} missing", path, steps), "the file is damaged");
    opt->set_steps(f.ints.at(steps));
  };
  load_dp("theta_class", data_params_->theta_class(), data_params_->class_optimizer(), "class_param_steps");
  load_dp("theta_inst", data_params_->theta_inst(), data_params_->inst_optimizer(), "inst_param_steps");
  data_params_->mark_theta_modified();
  // The stored noise map is authoritative: the run keeps training on the labels it started with.
  data::NoiseMap n;
  auto ints = [&](const char* name) {
    std::vector<double> v = f.at(name).to_double_vector();
    return std::vector<int64_t>(v.begin(), v.end());
  };
  n.protocol = f.strings.count("noise_protocol") ? f.strings.at("noise_protocol") : "none";
  n.label = ints("noise/label");
  n.original_label = ints("noise/original_label");
  n.image_source = ints("noise/image_source");
  std::vector<double> corrupted = f.at("noise/is_corrupted").to_double_vector();
  n.is_corrupted.assign(corrupted.begin(), corrupted.end());
  // The noise map is a pure function of (dataset, noise settings, seed): a resumed run must
  // rebuild the very same one, or it would train on other labels than it started with.
  DP_CHECK(n.label == data_.noise.label && n.image_source == data_.noise.image_source,
           fmt::format("{} was trained with another noise map ({} samples, protocol {}) than this config "
                       "builds ({} samples, protocol {})",
                       path, n.size(), n.protocol, data_.noise.size(), data_.noise.protocol),
           "resume with the dataset, noise settings and seed the run was started with");
  history_from(f, "history/sigma_inst_counts", inst_history_);
  history_from(f, "history/sigma_class_counts", class_history_);
  epoch_ = f.ints.at("epoch");
  global_step_ = f.ints.at("global_step");
  best_top1_ = f.floats.count("best_val_top1") ? f.floats.at("best_val_top1") : -1.0;
}

Config config_from_checkpoint(const io::TensorFile& f, const std::string& path) {
  DP_CHECK(f.strings.count("config"), path + " has no stored configuration",
           "it was not written by dp-train");
  return Config::from_string(f.strings.at("config"), path + "#config");
}

}  // namespace dp::train
