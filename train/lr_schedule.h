// Learning-rate schedules for the model optimiser. Data-parameter learning rates stay constant
// (docs/method.md §2) and never go through these.
//
// A schedule maps a 0-based epoch position (epoch + iteration/iterations_per_epoch; step
// schedules look at the whole epoch only) to a learning rate. Step decays are base·γ^k with k
// the number of milestones passed, as the reference computes them (lr · 0.1 ** k).
#pragma once
#include <memory>
#include <vector>

namespace dp::train {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  virtual double lr(double epoch) const = 0;
};

// base·γ^(number of milestones m with m ≤ floor(epoch)).
class MultiStepLr : public LrSchedule {
 public:
  MultiStepLr(double base_lr, std::vector<int> milestones, double gamma);
  double lr(double epoch) const override;

 private:
  double base_, gamma_;
  std::vector<int> milestones_;
};

// base·γ^floor(floor(epoch)/step_size).
class StepLr : public LrSchedule {
 public:
  StepLr(double base_lr, int step_size, double gamma);
  double lr(double epoch) const override;

 private:
  double base_, gamma_;
  int step_;
};

// eta_min + (base − eta_min)·(1 + cos(π·epoch/total_epochs))/2, continuous in epoch;
// eta_min after total_epochs.
class CosineLr : public LrSchedule {
 public:
  CosineLr(double base_lr, double total_epochs, double eta_min = 0.0);
  double lr(double epoch) const override;

 private:
  double base_, total_, eta_min_;
};

// Linear warm-up in front of another schedule: for epoch < warmup_epochs the rate is
// inner(epoch)·(start_factor + (1 − start_factor)·epoch/warmup_epochs); afterwards inner(epoch).
class LinearWarmupLr : public LrSchedule {
 public:
  LinearWarmupLr(std::unique_ptr<LrSchedule> inner, double warmup_epochs, double start_factor = 0.0);
  double lr(double epoch) const override;

 private:
  std::unique_ptr<LrSchedule> inner_;
  double warmup_, start_factor_;
};

// The reference's schedules: CIFAR milestones 80, 100, 160 (×0.1); ImageNet ×0.1 every 30 epochs.
std::unique_ptr<LrSchedule> cifar_reference_schedule(double base_lr = 0.1);
std::unique_ptr<LrSchedule> imagenet_reference_schedule(double base_lr = 0.1);

}  // namespace dp::train
