// The training step dp-train runs (train/train_step.h), fed as dp-train feeds it but without
// the data and file libraries (which the GPU kit leaves out): batches uploaded by BatchUploader
// from page-locked memory, a WRN forward/backward, the fused data-parameter loss with class and
// instance parameters, SGD and the SparseSGD steps with the clamp, running loss and top-k summed
// on the device, the per-sample loss record. On CUDA against the CPU, and CUDA-graph replay
// against the eager step, bitwise.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/cuda/context.h"
#include "engine/cuda/graph.h"
#include "dist/nccl_communicator.h"
#include "engine/rng.h"
#include "kernels/ops.h"
#include "kernels/sync_batch_norm.h"
#include "layers/layers.h"
#include "nets/registry.h"
#include "tests/common/devices.h"
#include "train/data_parameters.h"
#include "train/batch_upload.h"
#include "train/data_parallel.h"
#include "train/sample_loss_record.h"
#include "train/train_step.h"
#include "train/sgd.h"
#include "train/sparse_sgd.h"

using namespace dp;

namespace {

constexpr int64_t kClasses = 10, kInstances = 96, kBatch = 16, kSize = 32;

// Batch k of a fixed synthetic epoch: images, labels and instance ids from Philox. `n` rows
// (a smaller last batch when n < kBatch).
data::Batch make_batch(int64_t k, const data::HostAllocator& alloc, int64_t n = kBatch) {
  data::Batch b;
  b.n = n;
  b.c = 3;
  b.h = b.w = kSize;
  const size_t count = static_cast<size_t>(b.n * b.c * b.h * b.w);
  if (alloc.allocate)
    b.external = std::shared_ptr<float>(alloc.allocate(count), [alloc, count](float* p) { alloc.deallocate(p, count); });
  else
    b.images.resize(count);
  Rng rng(77, static_cast<uint64_t>(k));
  for (size_t i = 0; i < count; ++i) b.data()[i] = static_cast<float>(rng.uniform(-1, 1));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = (k * kBatch + i * 5) % kInstances;
    b.indices.push_back(id);
    b.labels.push_back(id % kClasses);
  }
  return b;
}

struct LoopOptions {
  Device device = Device::cpu();
  bool bf16 = false;
  MemoryFormat format = MemoryFormat::Contiguous;
  bool graphs = false;
  int64_t steps = 8;
  int64_t last_batch = kBatch;  // the size of the final step's batch
  // The data-parallel step on a one-rank NCCL communicator (what dp-train runs under mpirun,
  // with a world of one); with sync_batchnorm its BatchNorms sum their statistics through it.
  bool nccl = false, sync_batchnorm = false;
};

struct LoopResult {
  std::vector<std::vector<float>> params, momenta, buffers;
  std::vector<float> theta_class, theta_inst, theta_class_momentum, theta_inst_momentum;
  std::vector<float> sample_loss_sum, sample_loss_count;
  double loss_sum = 0;
  int64_t top1 = 0, replays = 0, eager = 0;
};

LoopResult run_loop(const LoopOptions& o) {
  auto net = nets::make_net("wrn-10-2", kClasses, 5);
  net->to(o.device);
  net->train();
  train::DataParamConfig dc;
  dc.learn_class_parameters = dc.learn_inst_parameters = true;
  dc.lr_class_param = 0.1;
  dc.lr_inst_param = 0.2;
  dc.wd_class_param = 1e-4;
  train::DataParameters dp_params(dc, kClasses, kInstances, o.device);
  train::SGD sgd(net->parameters(), {0.05, 0.9, 5e-4, false});
  train::TrainStepOptions so;
  so.autocast = o.bf16 ? DType::BFloat16 : DType::Float32;
  so.cuda_graphs = o.graphs;
  std::unique_ptr<dist::Communicator> comm;
  std::unique_ptr<train::DataParallelSync> sync;
  if (o.nccl) {
    comm = dist::make_nccl_communicator(o.device, 60.0);
    sync = std::make_unique<train::DataParallelSync>(*comm, sgd.flat());
    if (o.sync_batchnorm) {
      auto bn_sync = std::make_shared<kernels::BatchNormSync>();
      bn_sync->all_reduce_sum = [&comm](Tensor& t) { comm->all_reduce(t); };
      for (auto& [name, m] : net->named_modules())
        if (auto* bn = dynamic_cast<layers::BatchNorm2d*>(m)) bn->sync = bn_sync;
    }
  }
  train::TrainStep step(*net, sgd, dp_params, so, sync.get());
  train::SampleLossRecord record(kInstances, o.device);
  step.record_sample_losses(&record);
  train::BatchUploader uploader(o.device, o.format);
  const data::HostAllocator alloc = train::batch_memory_for(o.device);
  for (int64_t k = 0; k < o.steps; ++k) {
    const int64_t n = k + 1 == o.steps ? o.last_batch : kBatch;
    step.run(uploader.upload(make_batch(k, alloc, n)), 0.05 * (1.0 - 0.02 * static_cast<double>(k)));
  }
  LoopResult r;
  for (const Tensor& p : net->parameters()) r.params.push_back(p.to_float_vector());
  for (const Tensor& m : sgd.momentum_buffers()) r.momenta.push_back(m.to_float_vector());
  for (const auto& [name, b] : net->named_buffers())
    if (b.dtype() == DType::Float32) r.buffers.push_back(b.to_float_vector());
  r.theta_class = dp_params.theta_class().to_float_vector();
  r.theta_inst = dp_params.theta_inst().to_float_vector();
  r.theta_class_momentum = dp_params.class_optimizer()->momentum_buffer().to_float_vector();
  r.theta_inst_momentum = dp_params.inst_optimizer()->momentum_buffer().to_float_vector();
  r.sample_loss_sum = record.sum().to_float_vector();
  r.sample_loss_count = record.count().to_float_vector();
  const train::StepTotals t = step.totals();
  r.loss_sum = t.loss_sum;
  r.top1 = t.top1;
  r.replays = step.graph_replays();
  r.eager = step.eager_steps();
  return r;
}

void compare(const LoopResult& gpu, const LoopResult& cpu, double tol, const char* what) {
  SCOPED_TRACE(what);
  EXPECT_NEAR(gpu.loss_sum, cpu.loss_sum, tol * std::abs(cpu.loss_sum)) << "running loss";
  EXPECT_LT(dp::testing::rel_norm_error(gpu.theta_class, cpu.theta_class), tol) << "θ_class";
  EXPECT_LT(dp::testing::rel_norm_error(gpu.theta_inst, cpu.theta_inst), tol) << "θ_inst";
  EXPECT_LT(dp::testing::rel_norm_error(gpu.sample_loss_sum, cpu.sample_loss_sum), tol) << "per-sample loss sums";
  EXPECT_EQ(gpu.sample_loss_count, cpu.sample_loss_count) << "per-sample step counts";
  double worst = 0;
  for (size_t i = 0; i < cpu.params.size(); ++i) worst = std::max(worst, dp::testing::rel_norm_error(gpu.params[i], cpu.params[i]));
  EXPECT_LT(worst, tol) << "worst parameter after the steps";
  std::printf("%s: running loss %.6f vs %.6f, θ_inst %.2e, worst parameter %.2e, top-1 %lld vs %lld\n", what,
              gpu.loss_sum, cpu.loss_sum, dp::testing::rel_norm_error(gpu.theta_inst, cpu.theta_inst), worst,
              static_cast<long long>(gpu.top1), static_cast<long long>(cpu.top1));
}

void expect_bitwise_equal(const LoopResult& a, const LoopResult& b) {
  EXPECT_EQ(a.loss_sum, b.loss_sum);
  EXPECT_EQ(a.top1, b.top1);
  EXPECT_EQ(a.params, b.params) << "weights";
  EXPECT_EQ(a.momenta, b.momenta) << "SGD momenta";
  EXPECT_EQ(a.buffers, b.buffers) << "BN running statistics";
  EXPECT_EQ(a.theta_class, b.theta_class);
  EXPECT_EQ(a.theta_inst, b.theta_inst);
  EXPECT_EQ(a.theta_class_momentum, b.theta_class_momentum);
  EXPECT_EQ(a.theta_inst_momentum, b.theta_inst_momentum);
  EXPECT_EQ(a.sample_loss_sum, b.sample_loss_sum) << "per-sample loss record";
  EXPECT_EQ(a.sample_loss_count, b.sample_loss_count) << "per-sample loss record";
}

}  // namespace

// The reference side on its own (runs everywhere): the step is deterministic on the CPU, the
// layouts agree bitwise, a graph request is ignored on the CPU, and it learns something (θ moved
// away from its initial value 0 = log 1).
TEST(TrainStepLoop, CpuReferenceIsDeterministic) {
  const LoopResult a = run_loop({});
  LoopOptions cl;
  cl.format = MemoryFormat::ChannelsLast;
  cl.graphs = true;  // no effect on the CPU
  const LoopResult b = run_loop(cl);
  expect_bitwise_equal(a, b);
  EXPECT_EQ(b.replays, 0);
  EXPECT_EQ(b.eager, 8);
  EXPECT_TRUE(std::isfinite(a.loss_sum));
  double moved = 0;
  for (float v : a.theta_inst) moved = std::max(moved, std::abs(double(v)));
  EXPECT_GT(moved, 1e-3);
}

TEST(TrainStepLoop, CudaStepsMatchTheCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: the GPU training step is not run";
  cuda::set_allow_tf32(false);
  const LoopResult cpu = run_loop({});
  LoopOptions o;
  o.device = Device::cuda();
  compare(run_loop(o), cpu, 1e-3, "strict fp32, NCHW");
  o.format = MemoryFormat::ChannelsLast;
  compare(run_loop(o), cpu, 1e-3, "strict fp32, channels-last");
  o.graphs = true;
  compare(run_loop(o), cpu, 1e-3, "strict fp32, channels-last, CUDA graph");
  cuda::set_allow_tf32(true);
  // bf16 rounds activations to 8 bits: the run must stay close, not equal. θ starts at 0, so its
  // relative error is that of the θ gradients (0.14 for all gradients of a bf16 WRN-10-2 step on
  // an H100): a loose bound that a layout or gating bug (errors of order 1) still breaks.
  o.bf16 = true;
  o.graphs = false;
  compare(run_loop(o), cpu, 0.3, "bf16, channels-last");
}

// Replaying the captured step gives exactly the eager steps: 24 steps (2 eager warm-up, one
// capture, replays) with a smaller last batch (run eagerly), class and instance θ, SGD and
// SparseSGD, in strict fp32 NCHW and in bf16 channels-last. Deterministic cuDNN algorithms, so
// that the two runs cannot differ by an algorithm's atomics.
TEST(TrainStepLoop, GraphReplayEqualsEagerBitwise) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: CUDA graphs are not run";
  cuda::set_deterministic(true);
  for (bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16, channels-last" : "strict fp32, NCHW");
    cuda::set_allow_tf32(false);
    LoopOptions o;
    o.device = Device::cuda();
    o.bf16 = bf16;
    o.format = bf16 ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
    o.steps = 24;
    o.last_batch = 9;
    const LoopResult eager = run_loop(o);
    o.graphs = true;
    const LoopResult graphed = run_loop(o);
    EXPECT_EQ(eager.replays, 0);
    EXPECT_EQ(graphed.replays, 21);  // steps 3..23 (the capture's replay included); the last is eager
    expect_bitwise_equal(graphed, eager);
  }
  cuda::set_deterministic(false);
  cuda::set_allow_tf32(true);
}

// The data-parallel step on a one-rank NCCL communicator: every collective is NCCL's (bucketed
// gradient all-reduce from the backward hook, θ row all-gathers), and a world of one must give
// the plain eager step bit for bit. With sync BN (float64 sums through NCCL, two-pass moments)
// it is another BN arithmetic, held to the CPU tolerance of CudaStepsMatchTheCpu.
TEST(TrainStepLoop, NcclOneRankStepEqualsThePlainStep) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: NCCL is not run";
  cuda::set_deterministic(true);
  cuda::set_allow_tf32(false);
  LoopOptions o;
  o.device = Device::cuda();
  const LoopResult plain = run_loop(o);
  o.nccl = true;
  const LoopResult nccl = run_loop(o);
  expect_bitwise_equal(nccl, plain);
  EXPECT_EQ(nccl.replays, 0) << "data-parallel steps run eagerly";
  o.sync_batchnorm = true;
  compare(run_loop(o), run_loop({}), 1e-3, "one-rank NCCL, sync BN, strict fp32");
  cuda::set_deterministic(false);
  cuda::set_allow_tf32(true);
}

// A step whose dropout draws a mask from a host counter changes a kernel argument every step
// (engine/host_state.h): it is never captured. With p = 0 nothing is drawn and the step is.
TEST(TrainStepLoop, DropoutStepsStayEager) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: CUDA graphs are not run";
  for (double p : {0.3, 0.0}) {
    SCOPED_TRACE("dropout p = " + std::to_string(p));
    auto net = std::make_shared<layers::Sequential>();
    net->push_back(std::make_shared<layers::Conv2d>(3, 8, 3, 1, 1));
    net->push_back(std::make_shared<layers::Dropout>(p, 1));
    net->push_back(std::make_shared<layers::AdaptiveAvgPool2d>(1));
    net->push_back(std::make_shared<layers::Flatten>());
    net->push_back(std::make_shared<layers::Linear>(8, kClasses));
    net->init_parameters(3);
    net->to(Device::cuda());
    net->train();
    train::DataParamConfig dc;
    dc.learn_inst_parameters = true;
    train::DataParameters dp_params(dc, kClasses, kInstances, Device::cuda());
    train::SGD sgd(net->parameters(), {0.05, 0.9, 5e-4, false});
    train::TrainStepOptions so;
    so.cuda_graphs = true;
    train::TrainStep step(*net, sgd, dp_params, so);
    train::BatchUploader uploader(Device::cuda(), MemoryFormat::Contiguous);
    const data::HostAllocator alloc = train::batch_memory_for(Device::cuda());
    for (int64_t k = 0; k < 8; ++k) step.run(uploader.upload(make_batch(k, alloc)), 0.05);
    EXPECT_EQ(step.graph_replays(), p > 0 ? 0 : 6);
    EXPECT_EQ(step.eager_steps(), p > 0 ? 8 : 2);
  }
}

// SparseSGD reads its rate on the device (as SGD does): a replayed step uses a rate set after the
// capture, bit for bit as an eager step with that rate.
TEST(TrainStepLoop, SparseSgdRateSetAfterTheCaptureIsReplayed) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: CUDA graphs are not run";
  const Device gpu = Device::cuda();
  Tensor eager_theta = Tensor::zeros({64}, DType::Float32, gpu), graph_theta = Tensor::zeros({64}, DType::Float32, gpu);
  train::SparseSGD eager(eager_theta, {0.1, 0.9, train::SparsePresence::NonZeroGrad});
  train::SparseSGD graphed(graph_theta, {0.1, 0.9, train::SparsePresence::NonZeroGrad});
  const Tensor rows = Tensor::from_vector(std::vector<int64_t>{3, 9, 3, 40}, {4}, gpu);
  const Tensor grads = Tensor::from_vector(std::vector<float>{0.5f, -1.f, 0.25f, 2.f}, {4}, gpu);
  eager.step(rows, grads);  // the first step (buf ← g) stays out of the graph
  graphed.step(rows, grads);
  cuda::Graph graph(gpu.index);
  graph.capture([&] { graphed.step(rows, grads); }, "a SparseSGD step");
  graph.replay();  // the captured step itself
  eager.step(rows, grads);
  for (double lr : {0.4, 0.02}) {
    eager.set_lr(lr);
    graphed.set_lr(lr);
    eager.step(rows, grads);
    graph.replay();
  }
  EXPECT_EQ(graph_theta.to_float_vector(), eager_theta.to_float_vector());
  EXPECT_EQ(graphed.momentum_buffer().to_float_vector(), eager.momentum_buffer().to_float_vector());
}

// An op that waits for the device inside a capture is refused with an error naming it.
TEST(TrainStepLoop, HostSyncInsideACaptureIsRefused) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: CUDA graphs are not run";
  Tensor x = Tensor::ones({1}, DType::Float32, Device::cuda());
  cuda::Graph graph(0);
  try {
    graph.capture([&] { (void)kernels::mul(x, 2.0).item(); }, "a test step");
    FAIL() << "item() inside a capture was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("Tensor::item"), std::string::npos) << msg;
    EXPECT_NE(msg.find("a test step"), std::string::npos) << msg;
  }
  EXPECT_FALSE(graph.ready());
  EXPECT_EQ(cuda::current_capture(), "");
  // The stream is usable afterwards.
  EXPECT_EQ(kernels::mul(x, 3.0).item(), 3.0);
}
