// A small data-parameter cross-entropy problem (repeated classes, a duplicate instance, optional
// weight decay) and a runner of kernels::data_param_ce on CPU tensors, shared by the kernel's
// tests (tests/kernels/test_data_param_ce.cpp) and its autograd op's (tests/train).
#pragma once
#include <random>
#include <vector>

#include "engine/tensor.h"
#include "kernels/training_ops.h"
#include "tests/common/devices.h"

namespace dp::testing {

enum Mode { kClass = 1, kInst = 2, kJoint = 3 };

// Host copies of the op's outputs (empty where not requested).
struct Result {
  double loss = 0.0;
  std::vector<double> dlogits, row_ce, sigma, dsigma, gc_rows, gi_rows;
};

// Runs kernels::data_param_ce on CPU tensors, asking for every output when `all` is set.
inline Result run_data_param_ce(kernels::DataParamCeTensors t, bool all = true) {
  const DType dt = t.logits.dtype();
  const int64_t B = t.logits.size(0);
  t.loss = Tensor::empty({}, dt);
  if (all) {
    t.dlogits = Tensor::empty(t.logits.shape(), dt);
    t.row_ce = Tensor::empty({B}, dt);
    t.sigma = Tensor::empty({B}, dt);
    t.dsigma = Tensor::empty({B}, dt);
    if (t.theta_class.defined()) t.dtheta_class_rows = Tensor::empty({B}, dt);
    if (t.theta_inst.defined()) t.dtheta_inst_rows = Tensor::empty({B}, dt);
  }
  kernels::data_param_ce(t);
  auto host = [](const Tensor& x) { return x.defined() ? x.to_double_vector() : std::vector<double>{}; };
  return {t.loss.item(),    host(t.dlogits), host(t.row_ce),           host(t.sigma),
          host(t.dsigma), host(t.dtheta_class_rows), host(t.dtheta_inst_rows)};
}

struct Problem {
  int64_t B = 12, C = 7, N = 20;
  std::vector<double> logits, theta_c, theta_i;
  std::vector<int64_t> labels, indices;
  double wd_c = 0.0, wd_i = 0.0;
  Mode mode = kJoint;

  explicit Problem(Mode m, bool decay, unsigned seed = 7) : mode(m) {
    std::mt19937 gen(seed);
    std::normal_distribution<double> normal(0.0, 3.0);
    std::uniform_real_distribution<double> uni(-1.5, 1.5);
    logits.resize(B * C);
    for (double& v : logits) v = normal(gen);
    theta_c.resize(C);
    theta_i.resize(N);
    for (double& v : theta_c) v = uni(gen);
    for (double& v : theta_i) v = uni(gen);
    // Repeated classes (class 2 four times, class 5 twice) and a duplicate dataset index.
    labels = {2, 0, 2, 5, 1, 2, 5, 3, 2, 4, 6, 0};
    indices = {3, 17, 8, 0, 19, 11, 8, 5, 14, 2, 9, 6};
    if (decay) {
      wd_c = 0.3;
      wd_i = 0.2;
    }
  }

  kernels::DataParamCeTensors args() const {
    kernels::DataParamCeTensors a;
    a.logits = Tensor::from_vector(logits, {B, C});
    a.labels = vec(labels);
    a.indices = vec(indices);
    if (mode & kClass) a.theta_class = vec(theta_c);
    if (mode & kInst) a.theta_inst = vec(theta_i);
    a.wd_class = wd_c;
    a.wd_inst = wd_i;
    return a;
  }
  double loss() const { return run_data_param_ce(args(), false).loss; }
};

}  // namespace dp::testing
