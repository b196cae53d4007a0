// The run's state as a checkpoint and back: one line per owner (app/checkpoint_schema.h composes
// their parts; docs/checkpoint.md documents the layout).
#include <fmt/format.h>

#include "app/background_saver.h"
#include "app/checkpoint_schema.h"
#include "app/data_fingerprint.h"
#include "app/trainer.h"
#include "engine/error.h"
#include "kernels/ops.h"

namespace dp::app {

namespace {

// A copy in host memory, in logical (NCHW) order as files hold it: converted here, on the
// training thread, so that the background writer runs no kernel (and no CPU thread pool).
Tensor host_copy(const Tensor& t) {
  Tensor h = kernels::convert(t.to(Device::cpu()), t.dtype(), MemoryFormat::Contiguous);
  return h.shares_storage(t) ? h.clone() : h;
}

train::NamedTensors host_copy(const train::NamedTensors& named) {
  train::NamedTensors out;
  for (const auto& [name, t] : named) out.emplace_back(name, host_copy(t));
  return out;
}

ThetaState host_copy(const ThetaState& s) {
  if (!s.defined()) return s;
  return {host_copy(s.theta), host_copy(s.momentum), s.steps};
}

}  // namespace

Checkpoint Trainer::snapshot() const {
  Checkpoint c;
  c.model = layers::StateDict();
  for (const auto& [name, t] : model_->state_dict()) c.model.insert(name, host_copy(t));
  c.momentum = host_copy(sgd_->named_momentum(parameter_names()));
  c.theta_class = host_copy(data_params_->state(train::ThetaKind::kClass));
  c.theta_inst = host_copy(data_params_->state(train::ThetaKind::kInstance));
  c.noise = data_.noise;
  c.history = sigma_record_;
  c.sample_loss = {host_copy(loss_record_->sum()), host_copy(loss_record_->count())};
  c.progress = progress_;
  c.num_classes = data_.num_classes;
  c.arch = rc_.arch;
  c.config = config_.resolved_toml();
  c.rng = "philox4x32-10 keyed by (seed, epoch, sample index): seed, epoch and epoch_step are the state";
  c.data_fingerprint = data_fingerprint_;
  return c;
}

void Trainer::restore(const Checkpoint& c) {
  const std::string& path = c.path;
  if (!data_fingerprint_.empty())  // the writing rank's check (app/data_fingerprint.h)
    check_data_fingerprint(c.data_fingerprint, DataFingerprint::from_json(data_fingerprint_, "this run"), path,
                           "dp-train", options_.allow_data_change);
  DP_CHECK(c.arch == rc_.arch, fmt::format("{} holds a '{}' model but the config asks for '{}'", path, c.arch, rc_.arch),
           "resume with the config the run was started with");
  DP_CHECK(c.num_classes == data_.num_classes,
           fmt::format("{} was trained with {} classes but this config's dataset has {}", path, c.num_classes,
                       data_.num_classes),
           "resume with the dataset the run was started with");
  DP_CHECK(c.progress.seed == static_cast<int64_t>(rc_.seed),
           fmt::format("{} was trained with run.seed = {} but this config has {}", path, c.progress.seed, rc_.seed),
           "resume with the seed the run was started with: it decides the sample order of every epoch");
  // The noise map is a pure function of (dataset, noise settings, seed): a resumed run must
  // rebuild the very same one, or it would train on other labels than it started with.
  DP_CHECK(c.noise.has_value(), fmt::format("{} has no noise map (/noise/*)", path),
           "resume from a checkpoint written by dp-train");
  const data::NoiseMap& n = *c.noise;
  DP_CHECK(n.label == data_.noise.label && n.image_source == data_.noise.image_source,
           fmt::format("{} was trained with another noise map ({} samples, protocol {}) than this config "
                       "builds ({} samples, protocol {})",
                       path, n.size(), n.protocol, data_.noise.size(), data_.noise.protocol),
           "resume with the dataset, noise settings and seed the run was started with");
  model_->load_state_dict(c.model, /*strict=*/true);
  sgd_->load_named_momentum(c.momentum, parameter_names());  // into the flat momentum buffer (train/sgd.h)
  data_params_->load_state(c.theta_class, c.theta_inst, path);
  // Stored histories keep their own bins, so later epochs' rows line up with the earlier ones.
  if (!c.history.empty()) sigma_record_ = c.history;
  // A checkpoint written before the record existed: the means then cover the steps from here on.
  if (c.sample_loss.defined()) loss_record_->load(c.sample_loss.sum, c.sample_loss.count);
  progress_ = c.progress;
}

void Trainer::save_checkpoint(const std::string& path) const {
  saver_->wait();
  write_checkpoint(path, snapshot());
}

void Trainer::load_checkpoint(const std::string& path) {
  // Validated against the net it names: names, shapes and dtypes of the model and momentum
  // datasets, θ and noise-map lengths (app/checkpoint_schema.h); then against this run.
  restore(read_checkpoint(path));
}

Config config_from_checkpoint(const Checkpoint& c) {
  DP_CHECK(!c.config.empty(), c.path + " has no stored configuration", "it was not written by dp-train");
  return Config::from_string(c.config, c.path + "#config");
}

}  // namespace dp::app
