// What the data-parallel step tests share: a deterministic problem (a small WRN, images and labels
// as functions of the sample index, θ_class and θ_inst learnt) and the step in TrainStep's order.
#pragma once
#include <cmath>
#include <cstring>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/autograd.h"
#include "dist/communicator.h"
#include "kernels/ops.h"
#include "layers/layers.h"
#include "nets/registry.h"
#include "train/data_parameters.h"
#include "train/sample_loss_record.h"
#include "train/step_sync.h"
#include "train/train_step.h"
#include "train/sgd.h"

namespace dp::testing {

constexpr int64_t kSamples = 160, kClasses = 10, kImage = 32;

struct Problem {
  layers::ModulePtr model;
  std::unique_ptr<train::SGD> sgd;
  std::unique_ptr<train::DataParameters> data_params;
  std::unique_ptr<train::SampleLossRecord> sample_losses;  // each sample's training loss (exchanged like θ)
};

inline Problem make_problem(double model_lr = 1e-5, uint64_t seed = 7) {
  Problem p;
  p.model = nets::make_net("wrn-10-1", kClasses, seed);
  train::SgdOptions so;
  // A small model learning rate on purpose: this net on these images is chaotic at larger ones.
  // One process against itself with each batch's samples in reverse order (rounding only) ends 20
  // steps with momenta 5e-3 apart at lr 0.05, 1e-3 at lr 1e-3 and 1.8e-4 at lr 1e-4 (ReLU gates
  // near zero flip), which would hide any data-parallel error below that. At 1e-5 that floor
  // stays ~1e-7 for every group over six steps (over 20, a gate still flips for some seeds: see
  // test_data_parallel.cpp), and the model gradients of every step are still compared, through
  // the SGD momenta that sum them; θ learns at the reference's rates.
  so.lr = model_lr;
  so.momentum = 0.9;
  so.weight_decay = 5e-4;
  p.sgd = std::make_unique<train::SGD>(p.model->parameters(), so);
  train::DataParamConfig dc;
  dc.learn_class_parameters = dc.learn_inst_parameters = true;
  dc.lr_class_param = 0.1;
  dc.lr_inst_param = 0.8;
  dc.wd_class_param = 1e-4;  // exercises the weight-decay term of the θ exchange
  dc.init_inst_param = 0.5;
  p.data_params = std::make_unique<train::DataParameters>(dc, kClasses, kSamples);
  p.sample_losses = std::make_unique<train::SampleLossRecord>(kSamples, Device::cpu());
  p.model->train();
  return p;
}

// Sample indices of global batch `step` (a fixed pseudo-random walk over the dataset).
inline std::vector<int64_t> global_batch(int64_t step, int64_t batch) {
  std::vector<int64_t> idx;
  for (int64_t j = 0; j < batch; ++j) idx.push_back((step * 37 + j * 13 + (j * j) % 7) % kSamples);
  return idx;
}

struct HostBatch {
  Tensor images, labels, indices;
};

inline HostBatch make_batch(const std::vector<int64_t>& indices) {
  const auto n = static_cast<int64_t>(indices.size());
  std::vector<float> px(static_cast<size_t>(n * 3 * kImage * kImage));
  std::vector<int64_t> labels;
  for (int64_t b = 0; b < n; ++b) {
    const int64_t i = indices[b];
    labels.push_back((i * 7) % kClasses);
    // Pseudo-random pixels (a hash of sample and position) plus a class-dependent pattern: well
    // spread BN statistics, a learnable signal.
    for (int64_t k = 0; k < 3 * kImage * kImage; ++k) {
      uint64_t h = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(k) * 0xBF58476D1CE4E5B9ull;
      h ^= h >> 31;
      h *= 0x94D049BB133111EBull;
      h ^= h >> 29;
      const double noise = static_cast<double>(h >> 11) / 9007199254740992.0 * 2.0 - 1.0;
      const double pattern = std::sin(0.05 * static_cast<double>(k % (kImage * kImage)) * (1.0 + static_cast<double>(labels.back())));
      px[b * 3 * kImage * kImage + k] = static_cast<float>(noise + 0.5 * pattern);
    }
  }
  return {Tensor::from_vector(px, {n, 3, kImage, kImage}), Tensor::from_vector(labels, {n}),
          Tensor::from_vector(indices, {n})};
}

// One training step: the TrainStep dp-train runs (train/train_step.h), with the sync's calls
// (and the gradient-ready hook) where it makes them.
inline void step(Problem& p, const HostBatch& b, train::StepSync* sync) {
  train::TrainStep ts(*p.model, *p.sgd, *p.data_params, {}, sync);
  ts.record_sample_losses(p.sample_losses.get());
  ts.run(train::BatchTensors{b.images, b.labels, b.indices}, p.sgd->lr());
}

// The state in groups, each one flat vector (as flat parameter storage holds it): model weights,
// BN running statistics, SGD momenta, then each θ tensor and its momentum, and the per-sample
// loss record. Per-tensor relative
// errors would be meaningless for sums that cancel (e.g. the gradient of a conv bias that a BN
// follows is zero up to rounding); the comparison is ‖a − b‖ / ‖b‖ per group.
inline std::vector<std::pair<std::string, std::vector<double>>> grouped_state(Problem& p) {
  std::vector<std::pair<std::string, std::vector<double>>> g = {
      {"weights", {}}, {"bn running statistics", {}}, {"sgd momenta", {}}};
  auto append = [](std::vector<double>& dst, const Tensor& t) {
    const std::vector<double> v = t.to_double_vector();
    dst.insert(dst.end(), v.begin(), v.end());
  };
  for (const auto& [name, t] : p.model->named_parameters()) append(g[0].second, t);
  for (const auto& [name, t] : p.model->named_buffers())
    if (name.find("running_") != std::string::npos) append(g[1].second, t);
  for (const Tensor& b : p.sgd->momentum_buffers())
    if (b.defined()) append(g[2].second, b);
  auto& dp = *p.data_params;
  for (auto [name, t] : {std::pair<const char*, Tensor>{"theta_class", dp.theta_class()},
                         {"theta_inst", dp.theta_inst()},
                         {"theta_class_momentum", dp.class_optimizer()->momentum_buffer()},
                         {"theta_inst_momentum", dp.inst_optimizer()->momentum_buffer()},
                         {"sample_loss_sum", p.sample_losses->sum()},
                         {"sample_loss_count", p.sample_losses->count()}}) {
    g.emplace_back(name, std::vector<double>{});
    append(g.back().second, t);
  }
  return g;
}

inline double rel_norm_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0.0, n = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (a[i] - b[i]) * (a[i] - b[i]);
    n += b[i] * b[i];
  }
  return std::sqrt(d) / std::max(std::sqrt(n), 1e-30);
}

// Whether `t` holds the same bytes on every rank.
inline bool bitwise_equal_across_ranks(dist::Communicator& comm, const Tensor& t) {
  Tensor flat = t.to(Device::cpu()).clone().view({t.numel()});
  Tensor all = comm.all_gather(flat);
  const size_t bytes = flat.nbytes();
  const auto* base = static_cast<const unsigned char*>(all.raw_data());
  for (int r = 1; r < comm.world_size(); ++r)
    if (std::memcmp(base, base + r * bytes, bytes) != 0) return false;
  return true;
}

}  // namespace dp::testing
