#include "train/train_step.h"

#include <fmt/format.h>

#include <optional>

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

// A captured step of one batch shape: the graph, the fixed input slots it reads, and the host
// state its replays advance.
struct TrainStep::Captured {
#ifdef DP_WITH_CUDA
  explicit Captured(int device) : graph(device) {}
  cuda::Graph graph;
#endif
  BatchTensors slots;
  std::unique_ptr<ReplayedHostState> host;
};

struct TrainStep::ShapeState {
  int64_t eager_steps = 0;
  int64_t unsteady_warmups = 0;  // warm-up steps in a row that changed a kernel argument
  bool steady = false;           // the last warm-up step changed none: capture next
  bool eager_only = false;       // kept changing one (dropout masks): never captured
  std::unique_ptr<Captured> captured;
};

TrainStep::TrainStep(layers::Module& model, SGD& sgd, DataParameters& data_params, TrainStepOptions options,
                     StepSync* sync)
    : model_(model), sgd_(sgd), data_params_(data_params), options_(options), sync_(sync), device_(model.device()) {
  loss_sum_ = Tensor::zeros({}, DType::Float64, device_);
  correct_ = Tensor::zeros({2}, DType::Int64, device_);
  if (!device_.is_cuda()) options_.cuda_graphs = false;
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
  return options_.cuda_graphs && b.images.device().is_cuda() && (sync_ == nullptr || sync_->capturable());
}

void TrainStep::declare_host_state(HostState& state) {
  state.part("model", model_);
  state.part("sgd", sgd_);
  state.part("data_parameters", data_params_);
  if (sync_) state.part("sync", *sync_);
  state.version("loss_sum", loss_sum_);
  state.version("correct", correct_);
}

// After `warmup_steps` eager steps, each further warm-up step is measured: once one changes no
// value the kernels take by value, the next step is captured; a shape whose steps keep changing
// one (a dropout mask's stream) stays eager.
void TrainStep::warm_up(ShapeState& shape, const BatchTensors& b) {
  constexpr int64_t kUnsteadyLimit = 3;
  const bool measure = shape.eager_steps + 1 >= options_.warmup_steps;
  std::optional<ReplayedHostState> probe;
  if (measure) {
    probe.emplace(*this);
    probe->begin();
  }
  compute(b);
  ++shape.eager_steps;
  ++eager_steps_;
  if (!measure) return;
  if (probe->end().empty()) {
    shape.steady = true;
  } else if (++shape.unsteady_warmups >= kUnsteadyLimit) {
    shape.eager_only = true;
  }
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
  const ShapeKey key{b.images.size(0), b.images.size(1), b.images.size(2), b.images.size(3),
                     static_cast<int>(b.images.memory_format()), b.indices.defined()};
  std::unique_ptr<ShapeState>& slot = shapes_[key];
  if (!slot) slot = std::make_unique<ShapeState>();
  ShapeState& shape = *slot;
  if (shape.eager_only) {
    compute(b);
    ++eager_steps_;
    return;
  }
  if (!shape.captured && !shape.steady) {
    warm_up(shape, b);
    return;
  }
  // The capture runs the step's host code once but no kernel: the first replay below is that
  // step, whose host side is done; every later replay redoes it.
  const bool first_replay = !shape.captured;
  if (first_replay) capture(shape, b);
#ifdef DP_WITH_CUDA
  Captured& cap = *shape.captured;
  cudaStream_t stream = cuda::context(device_).stream();
  auto copy_in = [&](Tensor& slot_tensor, const Tensor& src) {
    if (src.defined())
      cuda::copy_bytes_async(slot_tensor.raw_data(), device_, src.raw_data(), src.device(), src.nbytes(), stream);
  };
  copy_in(cap.slots.images, b.images);
  copy_in(cap.slots.labels, b.labels);
  copy_in(cap.slots.indices, b.indices);
  cap.graph.replay();
  ++graph_replays_;
  if (!first_replay) cap.host->after_replay();
  if (shape.eager_only) shape.captured.reset();  // see capture()
#endif
}

void TrainStep::capture(ShapeState& shape, const BatchTensors& b) {
#ifdef DP_WITH_CUDA
  auto c = std::make_unique<Captured>(device_.index);
  c->slots.images = Tensor::empty(b.images.shape(), b.images.dtype(), device_, b.images.memory_format());
  c->slots.labels = Tensor::empty(b.labels.shape(), b.labels.dtype(), device_);
  if (b.indices.defined()) c->slots.indices = Tensor::empty(b.indices.shape(), b.indices.dtype(), device_);
  c->host = std::make_unique<ReplayedHostState>(*this);
  Captured& cap = *c;
  cap.host->begin();
  cap.graph.capture([&] { compute(cap.slots); }, fmt::format("the training step for batches {}", b.images.str()));
  // A warm-up step that changed no kernel argument came before, so this one should not either;
  // if it did, its one replay is still right (the arguments were this step's), later ones would
  // not be: the shape turns eager after it.
  if (!cap.host->end().empty()) shape.eager_only = true;
  shape.captured = std::move(c);
  ++graphs_captured_;
#else
  (void)shape;
  (void)b;
#endif
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

void TrainStep::restore_totals(const StepTotals& t) {
  NoGradGuard no_grad;
  kernels::fill_(loss_sum_, t.loss_sum);  // float64: exact
  correct_.copy_from(Tensor::from_vector(std::vector<int64_t>{t.top1, t.top5}, {2}).to(correct_.device()));
  samples_ = t.samples;
}

}  // namespace dp::train
