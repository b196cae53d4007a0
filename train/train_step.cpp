#include "train/train_step.h"

#include <fmt/format.h>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "kernels/ops.h"

#ifdef DP_WITH_CUDA
#include "engine/cuda/context.h"
#include "engine/cuda/copy.h"
#include "engine/cuda/graph.h"
#endif

namespace dp::train {

// A captured step of one batch shape: the graph and the fixed input slots it reads.
struct TrainStep::Captured {
#ifdef DP_WITH_CUDA
  explicit Captured(int device) : graph(device) {}
  cuda::Graph graph;
#endif
  BatchTensors slots;
};

TrainStep::TrainStep(layers::Module& model, SGD& sgd, DataParameters& data_params, TrainStepOptions options,
                     StepSync* sync)
    : model_(model), sgd_(sgd), data_params_(data_params), options_(options), sync_(sync), device_(model.device()) {
  loss_sum_ = Tensor::zeros({}, DType::Float64, device_);
  correct_ = Tensor::zeros({2}, DType::Int64, device_);
  if (!device_.is_cuda()) options_.cuda_graphs = false;
  model_replayable_ = options_.cuda_graphs && model.replayable();  // the model's layers do not change
}

TrainStep::~TrainStep() = default;

void TrainStep::compute(const BatchTensors& b) {
  sgd_.zero_grad();  // one fill of the flat gradient buffer
  Tensor logits;
  {
    AutocastGuard autocast(options_.autocast);
    logits = model_.forward(b.images);
  }
  if (logits.dtype() != DType::Float32) logits = kernels::to_dtype(logits, DType::Float32);  // loss in float32
  const double row_scale = sync_ ? sync_->row_gradient_scale(b.images.size(0)) : 1.0;
  DataParamCeOutput out = data_params_.loss(logits, b.labels, b.indices, row_scale);
  if (sync_) {
    sync_->before_backward();
    GradReadyHookGuard hook([this](const Tensor& leaf) { sync_->grad_ready(leaf); });
    out.loss.backward();
  } else {
    out.loss.backward();
  }
  if (sync_) sync_->finish_gradients();
  sgd_.step();
  if (sync_)
    data_params_.step([this](Tensor& rows, Tensor& grads) { sync_->exchange_rows(rows, grads); });
  else
    data_params_.step();
  NoGradGuard no_grad;
  kernels::add_(loss_sum_, kernels::cast(out.loss, DType::Float64), static_cast<double>(b.images.size(0)));
  kernels::topk_correct_(correct_, logits, b.labels);
  if (record_ != nullptr && b.indices.defined()) {
    Tensor rows = b.indices;
    Tensor losses = out.row_ce.dtype() == DType::Float32 ? out.row_ce : kernels::cast(out.row_ce, DType::Float32);
    if (sync_) sync_->exchange_rows(rows, losses);
    record_->add(rows, losses);
  }
}

bool TrainStep::graphable(const BatchTensors& b) const {
  return options_.cuda_graphs && b.images.device().is_cuda() && model_replayable_ &&
         (sync_ == nullptr || sync_->capturable());
}

void TrainStep::run(const BatchTensors& b, double lr) {
  DP_CHECK(b.images.defined() && b.images.dim() == 4 && b.labels.defined() && b.images.device() == device_,
           fmt::format("TrainStep: the batch must be images [n, c, h, w] and labels on {}, got {}", device_.str(),
                       b.images.defined() ? b.images.str() : std::string("no images")),
           "upload the batch with BatchUploader or to_device() first");
  sgd_.set_lr(lr);  // on CUDA also written to the device scalar a replayed step reads
  samples_ += b.images.size(0);
  if (!graphable(b)) {
    compute(b);
    ++eager_steps_;
    return;
  }
#ifdef DP_WITH_CUDA
  const ShapeKey key{b.images.size(0), b.images.size(1), b.images.size(2), b.images.size(3),
                     static_cast<int>(b.images.memory_format()), b.indices.defined()};
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    if (seen_[key] < options_.warmup_steps) {  // warm-up: first uses happen eagerly
      ++seen_[key];
      compute(b);
      ++eager_steps_;
      return;
    }
    auto c = std::make_unique<Captured>(device_.index);
    c->slots.images = Tensor::empty(b.images.shape(), b.images.dtype(), device_, b.images.memory_format());
    c->slots.labels = Tensor::empty(b.labels.shape(), b.labels.dtype(), device_);
    if (b.indices.defined()) c->slots.indices = Tensor::empty(b.indices.shape(), b.indices.dtype(), device_);
    Captured& cap = *c;
    cap.graph.capture([&] { compute(cap.slots); },
                      fmt::format("the training step for batches {}", b.images.str()));
    // The capture ran the step's host code once (counters, versions) but no kernel: the first
    // replay below is that step, so it is not noted again.
    it = graphs_.emplace(key, std::move(c)).first;
  } else {
    note_replayed_step();
  }
  Captured& cap = *it->second;
  cudaStream_t stream = cuda::context(device_).stream();
  auto copy_in = [&](Tensor& slot, const Tensor& src) {
    if (src.defined())
      cuda::copy_bytes_async(slot.raw_data(), device_, src.raw_data(), src.device(), src.nbytes(), stream);
  };
  copy_in(cap.slots.images, b.images);
  copy_in(cap.slots.labels, b.labels);
  copy_in(cap.slots.indices, b.indices);
  cap.graph.replay();
  ++graph_replays_;
#endif
}

void TrainStep::note_replayed_step() {
  model_.note_replayed_training_step();
  // The parameters are views of one flat buffer, whose storage carries their shared version.
  if (!sgd_.params().empty()) Tensor(sgd_.params().front()).bump_version();
  data_params_.note_replayed_step();
}

StepTotals TrainStep::totals() const {
  StepTotals t;
  t.loss_sum = loss_sum_.item();
  const std::vector<double> c = correct_.to_double_vector();
  t.top1 = static_cast<int64_t>(c[0]);
  t.top5 = static_cast<int64_t>(c[1]);
  t.samples = samples_;
  return t;
}

void TrainStep::reset_totals() {
  NoGradGuard no_grad;
  kernels::fill_(loss_sum_, 0.0);
  kernels::fill_(correct_, 0.0);
  samples_ = 0;
}

}  // namespace dp::train
