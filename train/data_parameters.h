// Data parameters (Saxena et al., NeurIPS 2019) exactly as docs/method.md §1–§3 defines
// them: per-class and/or per-instance temperatures stored in log space, the fused scaled
// cross-entropy, one SparseSGD per learnt tensor, and the clamp.
//
// The clamp, in O(batch): the method (docs/method.md §2) clamps every entry of each learnt tensor after every step.
// clamp(x) = min(max(x, lo), hi) is idempotent, and an entry the steps did not update keeps its
// value; so once every entry has been clamped once, re-clamping the entries not updated since
// changes nothing, and clamping only the rows updated by the steps gives a bit-identical tensor.
// The first clamp (after the first step, or after θ was replaced from outside, e.g. loaded from
// a checkpoint; call mark_theta_modified()) is a full O(N) clamp: initial values such as
// log(0.001) = −6.9078 lie outside [log(1/20), log(20)] and must become log(0.05) then, as the
// the method's consequence says. The clamp of updated rows is fused into the SparseSGD step; that
// commutes with the method's order (class step, instance step, then clamp) because neither step
// reads θ of the other tensor and the clamp never touches momentum buffers.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "engine/host_state.h"
#include "engine/state_io.h"
#include "engine/tensor.h"
#include "train/data_param_loss.h"
#include "train/sparse_sgd.h"

namespace dp::train {

// Names and defaults as the reference's command line (docs/method.md §3).
struct DataParamConfig {
  bool learn_class_parameters = false;
  bool learn_inst_parameters = false;
  double init_class_param = 1.0;
  double init_inst_param = 1.0;
  double lr_class_param = 0.1;
  double lr_inst_param = 0.1;
  double wd_class_param = 0.0;
  double wd_inst_param = 0.0;
  bool skip_clamp_data_param = false;
  // Project options (defaults = the reference).
  double momentum = 0.9;
  SparsePresence presence = SparsePresence::NonZeroGrad;
};

// [log(1/20), log(20)] computed in double and rounded to float32: ±2.9957323.
float data_param_clamp_lo();
float data_param_clamp_hi();

// Statistics of σ = exp(θ) as the reference logs them.
struct SigmaStats {
  int64_t count = 0;
  double highest = 0.0, lowest = 0.0, mean = 0.0;
  double std = 0.0;  // unbiased (n − 1); 0 when count < 2
  double sum = 0.0, sum_squares = 0.0;
  // Histogram: `bins` equal-width buckets over [lowest, highest], the last one closed.
  std::vector<double> bucket_edges;  // bins + 1 values
  std::vector<int64_t> bucket_counts;
};

// Over the entries of θ (log values, float32, any device) where mask is null, or where
// mask[i] == select (mask has one byte per entry, e.g. 1 = corrupted sample).
SigmaStats sigma_stats(const Tensor& theta, int bins = 30, const std::vector<uint8_t>* mask = nullptr,
                       uint8_t select = 1);

struct SigmaStatsSplit {
  SigmaStats all, corrupted, clean;
};
SigmaStatsSplit sigma_stats_split(const Tensor& theta, const std::vector<uint8_t>& corrupted,
                                  int bins = 30);

enum class ThetaKind { kClass, kInstance };

// A learnt θ vector with its SparseSGD state: the data parameters' part of a checkpoint, as the
// datasets data_parameters/theta_class (theta_inst) and theta_class_momentum (theta_inst_momentum),
// float32 [length], and the attribute class_param_steps (inst_param_steps).
struct ThetaState {
  Tensor theta;     // log-space θ
  Tensor momentum;  // same shape
  int64_t steps = 0;
  bool defined() const { return theta.defined(); }

  static std::string dataset(ThetaKind kind);  // "data_parameters/theta_class" or ".../theta_inst"
  void save(StateWriter& out, ThetaKind kind) const;  // nothing when undefined
  // Undefined when the file holds no such θ; else both tensors float32 [length] (`because` says
  // where the length comes from) and the step count.
  static ThetaState read(StateReader& in, ThetaKind kind, int64_t length, const std::string& because);
};

class DataParameters : public HasHostState {
 public:
  DataParameters(const DataParamConfig& config, int64_t num_classes, int64_t num_instances,
                 Device device = Device::cpu());

  bool learn_class() const { return config_.learn_class_parameters; }
  bool learn_inst() const { return config_.learn_inst_parameters; }
  bool active() const { return learn_class() || learn_inst(); }
  const DataParamConfig& config() const { return config_; }

  // Log-space parameters, float32 [num_classes] / [num_instances]; undefined when not learnt.
  const Tensor& theta_class() const { return theta_class_; }
  const Tensor& theta_inst() const { return theta_inst_; }
  SparseSGD* class_optimizer() { return class_opt_.get(); }
  SparseSGD* inst_optimizer() { return inst_opt_.get(); }

  // Forward + backward of docs/method.md §1 in one fused call. Returns the logged loss (scalar tensor
  // with a grad_fn to logits when they require grad) and keeps the per-row θ gradients and the
  // batch's rows for step(). With no kind learnt: plain mean CE. row_grad_scale: a data-parallel
  // rank's share of the global batch (StepSync::row_gradient_scale), 1 in a single process.
  DataParamCeOutput loss(const Tensor& logits, const Tensor& labels, const Tensor& indices,
                         double row_grad_scale = 1.0);

  // Turns the local batch's (rows, per-row gradients) into the global batch's (data-parallel
  // runs: train/step_sync.h); empty: a single process.
  using RowsExchange = std::function<void(Tensor& rows, Tensor& grads)>;

  // The class-parameter step, the instance-parameter step and the clamp (call after the model
  // step). Uses the gradients of the last loss() call.
  void step(const RowsExchange& exchange = {});

  // Its optimisers' state, and whether the next step clamps every entry (another launch than
  // the fused clamp of the updated rows): engine/host_state.h.
  void declare_host_state(HostState& state) override;

  // Call after writing θ from outside (checkpoint load): the next clamp is a full one.
  void mark_theta_modified() { fully_clamped_class_ = fully_clamped_inst_ = false; }

  // Checkpoints: θ of `kind` with its optimiser's state (undefined when not learnt; the tensors
  // are the live ones), and the restore. A kind this run learns must be in the checkpoint
  // (`source` names it in errors) with this run's length; a kind it does not learn is ignored.
  ThetaState state(ThetaKind kind) const;
  void load_state(const ThetaState& cls, const ThetaState& inst, const std::string& source);

 private:
  void step_one(SparseSGD& opt, Tensor rows, Tensor grads, bool& fully_clamped, const RowsExchange& exchange);

  DataParamConfig config_;
  Tensor theta_class_, theta_inst_;
  std::unique_ptr<SparseSGD> class_opt_, inst_opt_;
  bool fully_clamped_class_ = false, fully_clamped_inst_ = false;
  Tensor pending_labels_, pending_indices_, pending_class_grads_, pending_inst_grads_;
};

}  // namespace dp::train
