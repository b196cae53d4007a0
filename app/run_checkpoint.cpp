// The checkpoint of a run, through the one checkpoint schema (app/checkpoint_schema.h, which
// documents the layout). Randomness is counter-based (Philox keyed by seed, epoch, sample
// index), so seed + epoch is the whole RNG state.
#include <fmt/format.h>

#include "engine/error.h"
#include "app/checkpoint_schema.h"
#include "app/trainer.h"

namespace dp::app {

void Trainer::save_checkpoint(const std::string& path) const {
  Checkpoint c;
  c.model = model_->state_dict();
  auto named = model_->named_parameters();
  const auto& bufs = sgd_->momentum_buffers();
  for (size_t i = 0; i < named.size() && i < bufs.size(); ++i)
    if (bufs[i].defined()) c.momentum.emplace_back(named[i].first, bufs[i]);
  if (data_params_->learn_class())
    c.theta_class = {data_params_->theta_class(), data_params_->class_optimizer()->momentum_buffer(),
                     data_params_->class_optimizer()->steps()};
  if (data_params_->learn_inst())
    c.theta_inst = {data_params_->theta_inst(), data_params_->inst_optimizer()->momentum_buffer(),
                    data_params_->inst_optimizer()->steps()};
  c.noise = data_.noise;
  c.history = sigma_record_;
  c.sample_loss_sum = loss_record_->sum();
  c.sample_loss_count = loss_record_->count();
  c.epoch = epoch_;
  c.global_step = global_step_;
  c.seed = static_cast<int64_t>(rc_.seed);
  c.num_classes = data_.num_classes;
  c.best_val_top1 = best_top1_;
  c.best_epoch = best_epoch_;
  c.arch = rc_.arch;
  c.config = config_.resolved_toml();
  c.rng = "philox4x32-10 keyed by (seed, epoch, sample index): seed and epoch are the state";
  write_checkpoint(path, c);
}

void Trainer::load_checkpoint(const std::string& path) {
  // Validated against the net it names: names, shapes and dtypes of the model and momentum
  // datasets, θ and noise-map lengths (app/checkpoint_schema.h); then against this run.
  Checkpoint c = read_checkpoint(path);
  DP_CHECK(c.arch == rc_.arch,
           fmt::format("{} holds a '{}' model but the config asks for '{}'", path, c.arch, rc_.arch),
           "resume with the config the run was started with");
  DP_CHECK(c.num_classes == data_.num_classes,
           fmt::format("{} was trained with {} classes but this config's dataset has {}", path, c.num_classes,
                       data_.num_classes),
           "resume with the dataset the run was started with");
  model_->load_state_dict(c.model, /*strict=*/true);
  auto named = model_->named_parameters();
  std::vector<Tensor> bufs(named.size());
  for (size_t i = 0; i < named.size(); ++i)
    if (const Tensor* m = c.find_momentum(named[i].first)) bufs[i] = *m;
  sgd_->load_momentum_buffers(bufs);  // into the flat momentum buffer (train/sgd.h)
  auto load_dp = [&](const char* name, const ThetaState& stored, const Tensor& theta, train::SparseSGD* opt) {
    if (!theta.defined()) return;
    DP_CHECK(stored.defined(), fmt::format("{} has no learnt {} but the config learns it", path, name),
             "resume with the config the run was started with (data_parameters.learn_*_parameters)");
    DP_CHECK(stored.theta.shape() == theta.shape(),
             fmt::format("{}: {} has shape {} but this run's needs {}", path, name, shape_str(stored.theta.shape()),
                         shape_str(theta.shape())),
             "resume with the dataset the run was started with");
    Tensor target = theta;
    target.copy_from(stored.theta.to(target.device()));
    opt->momentum_buffer().copy_from(stored.momentum.to(opt->momentum_buffer().device()));
    opt->set_steps(stored.steps);
  };
  load_dp("theta_class", c.theta_class, data_params_->theta_class(), data_params_->class_optimizer());
  load_dp("theta_inst", c.theta_inst, data_params_->theta_inst(), data_params_->inst_optimizer());
  data_params_->mark_theta_modified();
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
  // Stored histories keep their own bins, so later epochs' rows line up with the earlier ones.
  if (!c.history.empty()) sigma_record_ = c.history;
  // A checkpoint written before the record existed: the means then cover the epochs from here on.
  if (c.sample_loss_sum.defined()) loss_record_->load(c.sample_loss_sum, c.sample_loss_count);
  epoch_ = c.epoch;
  global_step_ = c.global_step;
  best_top1_ = c.best_val_top1;
  best_epoch_ = c.best_epoch;
}

Config config_from_checkpoint(const Checkpoint& c) {
  DP_CHECK(!c.config.empty(), c.path + " has no stored configuration", "it was not written by dp-train");
  return Config::from_string(c.config, c.path + "#config");
}

}  // namespace dp::app
