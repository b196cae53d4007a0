#include "train/data_parameters.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "kernels/training_ops.h"
#include "train/sigma_histogram.h"

namespace dp::train {

float data_param_clamp_lo() { return static_cast<float>(std::log(1.0 / 20.0)); }
float data_param_clamp_hi() { return static_cast<float>(std::log(20.0)); }

namespace {

Tensor init_log_param(int64_t n, double init, const char* what, Device device) {
  DP_CHECK(init > 0.0 && std::isfinite(init),
           fmt::format("{} = {} must be a positive finite temperature", what, init),
           "data parameters are temperatures σ > 0; they are stored as log(σ)");
  DP_CHECK(n > 0, fmt::format("{}: need at least one entry, got {}", what, n),
           "pass the number of classes / training samples");
  // log computed in double, stored as float32 (docs/method.md §1).
  std::vector<float> v(static_cast<size_t>(n), static_cast<float>(std::log(init)));
  return Tensor::from_vector(v, {n}).to(device);
}

}  // namespace

DataParameters::DataParameters(const DataParamConfig& config, int64_t num_classes,
                               int64_t num_instances, Device device)
    : config_(config) {
  if (config_.learn_class_parameters) {
    theta_class_ = init_log_param(num_classes, config_.init_class_param, "init_class_param", device);
    class_opt_ = std::make_unique<SparseSGD>(
        theta_class_, SparseSgdOptions{config_.lr_class_param, config_.momentum, config_.presence});
  }
  if (config_.learn_inst_parameters) {
    theta_inst_ = init_log_param(num_instances, config_.init_inst_param, "init_inst_param", device);
    inst_opt_ = std::make_unique<SparseSGD>(
        theta_inst_, SparseSgdOptions{config_.lr_inst_param, config_.momentum, config_.presence});
  }
}

DataParamCeOutput DataParameters::loss(const Tensor& logits, const Tensor& labels,
                                       const Tensor& indices, double row_grad_scale) {
  DataParamCeOutput out = data_param_cross_entropy(
      logits, labels, indices, theta_class_, theta_inst_,
      config_.wd_class_param, config_.wd_inst_param, row_grad_scale);
  pending_labels_ = labels;
  pending_indices_ = indices;
  pending_class_grads_ = out.dtheta_class_rows;
  pending_inst_grads_ = out.dtheta_inst_rows;
  return out;
}

void DataParameters::step_one(SparseSGD& opt, Tensor rows, Tensor grads, bool& fully_clamped,
                              const RowsExchange& exchange) {
  if (exchange) exchange(rows, grads);
  const bool clamp = !config_.skip_clamp_data_param;
  const float lo = data_param_clamp_lo(), hi = data_param_clamp_hi();
  if (!clamp || fully_clamped) {
    opt.step(rows, grads, SparseClamp{clamp, lo, hi});
    return;
  }
  opt.step(rows, grads);
  Tensor theta = opt.param();
  kernels::clamp_all_(theta, lo, hi);
  fully_clamped = true;
}

void DataParameters::declare_host_state(HostState& state) {
  if (class_opt_) {
    state.part("class_optimizer", *class_opt_);
    state.kernel_argument("class_full_clamp", [this] { return static_cast<int64_t>(!fully_clamped_class_); });
  }
  if (inst_opt_) {
    state.part("inst_optimizer", *inst_opt_);
    state.kernel_argument("inst_full_clamp", [this] { return static_cast<int64_t>(!fully_clamped_inst_); });
  }
}

void DataParameters::step(const RowsExchange& exchange) {
  if (!active()) return;
  DP_CHECK(pending_labels_.defined(), "DataParameters::step: no loss() since the last step",
           "call loss() (forward and backward) before step()");
  if (class_opt_) {
    Tensor grads = pending_class_grads_.dtype() == DType::Float32 ? pending_class_grads_
                                                                  : pending_class_grads_.to(DType::Float32);
    step_one(*class_opt_, pending_labels_, grads, fully_clamped_class_, exchange);
  }
  if (inst_opt_) {
    Tensor grads = pending_inst_grads_.dtype() == DType::Float32 ? pending_inst_grads_
                                                                 : pending_inst_grads_.to(DType::Float32);
    step_one(*inst_opt_, pending_indices_, grads, fully_clamped_inst_, exchange);
  }
  pending_labels_ = pending_indices_ = pending_class_grads_ = pending_inst_grads_ = Tensor();
}

SigmaStats sigma_stats(const Tensor& theta, int bins, const std::vector<uint8_t>* mask,
                       uint8_t select) {
  DP_CHECK(bins > 0, fmt::format("sigma_stats: bins = {} must be positive", bins), "use e.g. 30");
  const std::vector<double> logs = theta.to_double_vector();
  DP_CHECK(mask == nullptr || mask->size() == logs.size(),
           fmt::format("sigma_stats: mask has {} entries for {} parameters", mask ? mask->size() : 0,
                       logs.size()),
           "the corrupted-sample mask needs one entry per training sample");
  std::vector<double> sig;
  sig.reserve(logs.size());
  for (size_t i = 0; i < logs.size(); ++i)
    if (mask == nullptr || (*mask)[i] == select)
      sig.push_back(static_cast<double>(std::exp(static_cast<float>(logs[i]))));
  SigmaStats s;
  s.count = static_cast<int64_t>(sig.size());
  s.bucket_counts.assign(static_cast<size_t>(bins), 0);
  if (sig.empty()) return s;
  s.highest = *std::max_element(sig.begin(), sig.end());
  s.lowest = *std::min_element(sig.begin(), sig.end());
  for (double v : sig) {
    s.sum += v;
    s.sum_squares += v * v;
  }
  s.mean = s.sum / static_cast<double>(s.count);
  if (s.count > 1) {
    double m2 = 0.0;  // two-pass: stable even when σ is nearly constant
    for (double v : sig) m2 += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(m2 / static_cast<double>(s.count - 1));
  }
  s.bucket_edges = linear_edges(s.lowest, s.highest, bins);
  const std::vector<float> sig_f(sig.begin(), sig.end());
  s.bucket_counts = histogram(sig_f, s.bucket_edges);
  return s;
}

SigmaStatsSplit sigma_stats_split(const Tensor& theta, const std::vector<uint8_t>& corrupted,
                                  int bins) {
  return {sigma_stats(theta, bins), sigma_stats(theta, bins, &corrupted, 1),
          sigma_stats(theta, bins, &corrupted, 0)};
}

std::string ThetaState::dataset(ThetaKind kind) {
  return kind == ThetaKind::kClass ? "data_parameters/theta_class" : "data_parameters/theta_inst";
}

namespace {
const char* steps_attribute(ThetaKind kind) {
  return kind == ThetaKind::kClass ? "class_param_steps" : "inst_param_steps";
}
}  // namespace

void ThetaState::save(StateWriter& out, ThetaKind kind) const {
  if (!defined()) return;
  out.tensor(dataset(kind), theta);
  out.tensor(dataset(kind) + "_momentum", momentum);
  out.integer(steps_attribute(kind), steps);
}

ThetaState ThetaState::read(StateReader& in, ThetaKind kind, int64_t length, const std::string& because) {
  const std::string name = dataset(kind), momentum_name = name + "_momentum";
  ThetaState s;
  const Tensor* theta = in.take(name);
  const Tensor* momentum = in.take(momentum_name);
  if (theta == nullptr) {
    if (momentum != nullptr) in.invalid(fmt::format("dataset /{} is there without /{}", momentum_name, name));
    return s;
  }
  if (momentum == nullptr) in.invalid(fmt::format("dataset /{} has no /{}", name, momentum_name));
  for (const auto& [n, t] : {std::pair{name, theta}, {momentum_name, momentum}}) {
    in.expect_dtype(n, *t, DType::Float32);
    in.expect_shape(n, *t, {length}, because);
  }
  s.theta = *theta;
  s.momentum = *momentum;
  s.steps = in.integer_in(steps_attribute(kind), 0, INT64_MAX, std::nullopt);
  return s;
}

ThetaState DataParameters::state(ThetaKind kind) const {
  const SparseSGD* opt = kind == ThetaKind::kClass ? class_opt_.get() : inst_opt_.get();
  if (opt == nullptr) return {};
  return {opt->param(), opt->momentum_buffer(), opt->steps()};
}

void DataParameters::load_state(const ThetaState& cls, const ThetaState& inst, const std::string& source) {
  auto load = [&](ThetaKind kind, const ThetaState& stored, SparseSGD* opt) {
    if (opt == nullptr) return;
    const std::string full = ThetaState::dataset(kind), name = full.substr(full.rfind('/') + 1);
    DP_CHECK(stored.defined(), fmt::format("{} has no learnt {} but this run learns it", source, name),
             "resume with the config the run was started with (data_parameters.learn_*_parameters)");
    DP_CHECK(stored.theta.shape() == opt->param().shape(),
             fmt::format("{}: {} has shape {} but this run's needs {}", source, name, shape_str(stored.theta.shape()),
                         shape_str(opt->param().shape())),
             "resume with the dataset the run was started with");
    Tensor theta = opt->param();
    theta.copy_from(stored.theta.to(theta.device()));
    opt->momentum_buffer().copy_from(stored.momentum.to(opt->momentum_buffer().device()));
    opt->set_steps(stored.steps);
  };
  load(ThetaKind::kClass, cls, class_opt_.get());
  load(ThetaKind::kInstance, inst, inst_opt_.get());
  mark_theta_modified();
}

}  // namespace dp::train
