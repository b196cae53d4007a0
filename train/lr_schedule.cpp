#include "train/lr_schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "engine/error.h"

namespace dp::train {

MultiStepLr::MultiStepLr(double base_lr, std::vector<int> milestones, double gamma)
    : base_(base_lr), gamma_(gamma), milestones_(std::move(milestones)) {
  DP_CHECK(std::is_sorted(milestones_.begin(), milestones_.end()),
           "MultiStepLr: milestones must be increasing", "e.g. 80, 100, 160");
}

double MultiStepLr::lr(double epoch) const {
  const double e = std::floor(epoch);
  int k = 0;
  for (int m : milestones_) k += (m <= e) ? 1 : 0;
  return base_ * std::pow(gamma_, k);
}

StepLr::StepLr(double base_lr, int step_size, double gamma) : base_(base_lr), gamma_(gamma), step_(step_size) {
  DP_CHECK(step_size > 0, fmt::format("StepLr: step size {} must be positive", step_size), "e.g. 30");
}

double StepLr::lr(double epoch) const {
  const double k = std::floor(std::floor(epoch) / step_);
  return base_ * std::pow(gamma_, k);
}

CosineLr::CosineLr(double base_lr, double total_epochs, double eta_min)
    : base_(base_lr), total_(total_epochs), eta_min_(eta_min) {
  DP_CHECK(total_epochs > 0, fmt::format("CosineLr: total epochs {} must be positive", total_epochs),
           "use the run's number of epochs");
}

double CosineLr::lr(double epoch) const {
  const double t = std::clamp(epoch / total_, 0.0, 1.0);
  return eta_min_ + (base_ - eta_min_) * (1.0 + std::cos(std::numbers::pi * t)) / 2.0;
}

LinearWarmupLr::LinearWarmupLr(std::unique_ptr<LrSchedule> inner, double warmup_epochs,
                               double start_factor)
    : inner_(std::move(inner)), warmup_(warmup_epochs), start_factor_(start_factor) {
  DP_CHECK(inner_ != nullptr && warmup_epochs >= 0 && start_factor >= 0 && start_factor <= 1,
           fmt::format("LinearWarmupLr: bad warm-up ({} epochs, start factor {})", warmup_epochs,
                       start_factor),
           "warm-up epochs >= 0, start factor in [0, 1], and a schedule to warm up into");
}

double LinearWarmupLr::lr(double epoch) const {
  const double base = inner_->lr(epoch);
  if (epoch >= warmup_) return base;
  return base * (start_factor_ + (1.0 - start_factor_) * std::max(epoch, 0.0) / warmup_);
}

std::unique_ptr<LrSchedule> cifar_reference_schedule(double base_lr) {
  return std::make_unique<MultiStepLr>(base_lr, std::vector<int>{80, 100, 160}, 0.1);
}

std::unique_ptr<LrSchedule> imagenet_reference_schedule(double base_lr) {
  return std::make_unique<StepLr>(base_lr, 30, 0.1);
}

}  // namespace dp::train
