// One training step as a unit, the one every caller runs (dp-train's Trainer, the tests, the
// CPU and GPU benchmarks), in the reference's order:
//   zero grads → forward (under autocast) → data-parameter loss → backward → model SGD step →
//   class-parameter step → instance-parameter step (clamp fused) → device-side loss/top-k counters
//   → the per-sample loss record, when one is attached (train/sample_loss_record.h).
//
// Nothing in a step waits for the device: the running loss and the top-1/top-5 counts are summed
// on the device and read by totals() (a wait) when the caller wants them.
//
// CUDA graphs (options.cuda_graphs, CUDA only): each batch shape runs `warmup_steps` eager steps
// (cuDNN's algorithm search, the optimisers' first steps and the first full θ clamp happen there),
// then its step is captured once into a graph (engine/cuda/graph.h) and replayed from then on. A
// replay reads the batch from fixed input slots (the batch is copied in first, on the stream) and
// the learning rates from device memory (SGD::lr_tensor(), SparseSGD::lr_tensor()). What the step
// does on the host is redone after each replay by one mechanism (engine/host_state.h): every
// component declares its host state (declare_host_state below gathers the model's, the
// optimisers', the data parameters' and the sync's), the capture is measured, each replay
// advances it alike. The last warm-up step is measured too: a step that changes a value its
// kernels take by value (a dropout mask's stream, a first-step flag) is not captured yet, and one
// that keeps changing it (dropout) stays eager, as does a StepSync that is not capturable.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "engine/host_state.h"
#include "engine/tensor.h"
#include "layers/module.h"
#include "train/data_parameters.h"
#include "train/batch_upload.h"
#include "train/sample_loss_record.h"
#include "train/step_sync.h"
#include "train/sgd.h"

namespace dp::train {

struct TrainStepOptions {
  DType autocast = DType::Float32;  // BFloat16: bf16 mixed precision (CUDA)
  bool cuda_graphs = false;         // capture and replay on CUDA; ignored on the CPU
  // Eager steps of a batch shape before it is captured, and more until one changes no value its
  // kernels take by value (the optimisers' first step does: the earliest capture is the third).
  int64_t warmup_steps = 2;
};

// Sums since the last reset_totals(): loss·batch over the steps, top-1 and top-5 correct, samples.
struct StepTotals {
  double loss_sum = 0.0;
  int64_t top1 = 0, top5 = 0, samples = 0;
};

class TrainStep : public HasHostState {
 public:
  // The model's parameters are those `sgd` updates; all on one device. `sync` (data-parallel
  // runs) is called at the points step_sync.h lists; it must outlive the step.
  TrainStep(layers::Module& model, SGD& sgd, DataParameters& data_params, TrainStepOptions options = {},
            StepSync* sync = nullptr);
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // One step on a batch already on the model's device, at model learning rate `lr`.
  void run(const BatchTensors& batch, double lr);

  StepTotals totals() const;  // waits for the device

  // From the next step on, every step adds its batch's row losses to `record` (null: none). The
  // batch must carry its dataset indices; in a data-parallel run the rows are exchanged like θ's,
  // so every rank's record holds the global batch's. Attach before the first step of a shape is
  // captured (a captured step keeps what it recorded).
  void record_sample_losses(SampleLossRecord* record) { record_ = record; }
  void reset_totals();
  // Sets the sums to `totals` (a run resumed mid-epoch continues its epoch's sums; checkpoints).
  void restore_totals(const StepTotals& totals);

  // How the steps ran so far (for tests, benchmarks and the trainer's banner).
  int64_t eager_steps() const { return eager_steps_; }
  int64_t graph_replays() const { return graph_replays_; }
  int64_t graphs_captured() const { return graphs_captured_; }

  // Everything the step body changes on the host: the model's, the optimisers', the data
  // parameters', the sync's, and the step's own device-side totals.
  void declare_host_state(HostState& state) override;

 private:
  struct Captured;
  struct ShapeState;  // what graph mode knows about one batch shape
  using ShapeKey = std::tuple<int64_t, int64_t, int64_t, int64_t, int, bool>;

  void compute(const BatchTensors& batch);  // the step body: what a graph records
  bool graphable(const BatchTensors& batch) const;
  void warm_up(ShapeState& shape, const BatchTensors& batch);
  void capture(ShapeState& shape, const BatchTensors& batch);

  layers::Module& model_;
  SGD& sgd_;
  DataParameters& data_params_;
  TrainStepOptions options_;
  StepSync* sync_;
  SampleLossRecord* record_ = nullptr;
  Device device_;
  Tensor loss_sum_, correct_;  // float64 [], int64 [2] on the device
  int64_t samples_ = 0;
  std::map<ShapeKey, std::unique_ptr<ShapeState>> shapes_;  // graph mode
  int64_t eager_steps_ = 0, graph_replays_ = 0, graphs_captured_ = 0;
};

}  // namespace dp::train
