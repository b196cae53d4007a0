// The one replay mechanism (engine/host_state.h), audited on the CPU.
//
// A CUDA graph replay runs a captured step's kernels and none of its host code; afterwards the
// step advances the host state every component declared by what the captured step changed. That
// is right only if every piece of host state a step changes is declared. A CPU has no graphs, but
// a replay can be emulated exactly: its kernels do what the eager step's kernels do, so run two
// identical trainings, A eagerly and B with one step "replayed": B copies the tensors A's step
// wrote (the tensors B declares as written, no version change), then applies the mechanism. If
// B's next eager step and all its state then equal A's bit for bit, nothing the step changes on
// the host was left out; a module that keeps undeclared host state makes them differ, and the
// audit names what differs.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/host_state.h"
#include "engine/rng.h"
#include "kernels/ops.h"
#include "layers/layers.h"
#include "nets/registry.h"
#include "train/data_parameters.h"
#include "train/sgd.h"
#include "train/train_step.h"

namespace dp {
namespace {

constexpr int64_t kClasses = 10, kInstances = 40, kBatch = 8;

using ModelFactory = std::function<layers::ModulePtr()>;

// Batch k of a fixed synthetic epoch (Philox), on the CPU.
train::BatchTensors make_batch(int64_t k, int64_t size) {
  const int64_t count = kBatch * 3 * size * size;
  std::vector<float> pixels(static_cast<size_t>(count));
  Rng rng(91, static_cast<uint64_t>(k));
  for (float& v : pixels) v = static_cast<float>(rng.uniform(-1, 1));
  std::vector<int64_t> labels, indices;
  for (int64_t i = 0; i < kBatch; ++i) {
    indices.push_back((k * kBatch + 3 * i) % kInstances);
    labels.push_back(indices.back() % kClasses);
  }
  return {Tensor::from_vector(pixels, {kBatch, 3, size, size}), Tensor::from_vector(labels, {kBatch}),
          Tensor::from_vector(indices, {kBatch})};
}

double lr_of(int64_t k) { return 0.05 * (1.0 - 0.1 * static_cast<double>(k)); }

// One training: a model, its SGD, class and instance data parameters, the step.
struct Training {
  layers::ModulePtr model;
  std::unique_ptr<train::SGD> sgd;
  std::unique_ptr<train::DataParameters> data_params;
  std::unique_ptr<train::TrainStep> step;

  explicit Training(const ModelFactory& make) : model(make()) {
    model->train();
    train::DataParamConfig dc;
    dc.learn_class_parameters = dc.learn_inst_parameters = true;
    dc.lr_inst_param = 0.2;
    dc.wd_class_param = 1e-4;
    data_params = std::make_unique<train::DataParameters>(dc, kClasses, kInstances);
    sgd = std::make_unique<train::SGD>(model->parameters(), train::SgdOptions{0.05, 0.9, 5e-4, false});
    step = std::make_unique<train::TrainStep>(*model, *sgd, *data_params);
  }
  void run(int64_t k, int64_t size) { step->run(make_batch(k, size), lr_of(k)); }
};

::testing::AssertionResult same_bits(const Tensor& a, const Tensor& b, const std::string& what) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype())
    return ::testing::AssertionFailure() << what << ": " << a.str() << " vs " << b.str();
  const Tensor ca = a.to(Device::cpu()), cb = b.to(Device::cpu());
  if (std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) != 0)
    return ::testing::AssertionFailure() << what << " differs";
  return ::testing::AssertionSuccess();
}

struct AuditResult {
  std::vector<std::string> changed_kernel_arguments;  // non-empty: the step is not replayable
  ::testing::AssertionResult same = ::testing::AssertionSuccess();
};

// A: four eager steps. B: step 0 eagerly, step 1 eagerly measured (a capture runs the host code
// once), step 2 as an emulated replay, step 3 eagerly. Then B must equal A.
AuditResult audit_replay(const ModelFactory& make, int64_t size) {
  Training a(make), b(make);
  for (int64_t k = 0; k < 3; ++k) a.run(k, size);
  b.run(0, size);
  ReplayedHostState replay(*b.step);
  replay.begin();
  b.run(1, size);
  AuditResult result;
  result.changed_kernel_arguments = replay.end();
  if (!result.changed_kernel_arguments.empty()) return result;
  // Step 2, replayed: the host code before the graph (TrainStep::run sets the rate), the kernels'
  // results (A's), the mechanism.
  b.sgd->set_lr(lr_of(2));
  HostState a_state;
  a.step->declare_host_state(a_state);
  const auto a_written = a_state.written_tensors(), b_written = replay.state().written_tensors();
  if (a_written.size() != b_written.size()) {
    result.same = ::testing::AssertionFailure() << "the two trainings declare different state";
    return result;
  }
  for (size_t i = 0; i < a_written.size(); ++i) {
    const Tensor& src = a_written[i].second;
    Tensor dst = b_written[i].second;
    std::memcpy(dst.raw_data(), src.raw_data(), src.nbytes());
  }
  replay.after_replay();
  a.run(3, size);
  b.run(3, size);

  const train::StepTotals ta = a.step->totals(), tb = b.step->totals();
  if (ta.loss_sum != tb.loss_sum || ta.top1 != tb.top1 || ta.top5 != tb.top5) {
    result.same = ::testing::AssertionFailure()
                  << fmt::format("the step after the replay differs: running loss {} vs {} eagerly", tb.loss_sum,
                                 ta.loss_sum);
    return result;
  }
  HostState a_after;
  a.step->declare_host_state(a_after);
  const std::vector<std::string> host_diff = replay.state().changed(a_after.snapshot(), replay.state().snapshot());
  if (!host_diff.empty()) {
    result.same = ::testing::AssertionFailure() << "declared host state differs after the replay: "
                                                << fmt::format("{}", fmt::join(host_diff, ", "));
    return result;
  }
  const auto a_now = a_after.written_tensors(), b_now = replay.state().written_tensors();
  for (size_t i = 0; i < a_now.size(); ++i)
    if (auto r = same_bits(b_now[i].second, a_now[i].second, b_now[i].first); !r) {
      result.same = r;
      return result;
    }
  // Host state that only a checkpoint shows (the optimisers' step counts, which resume reads).
  for (auto [opt_a, opt_b] : {std::pair{a.data_params->class_optimizer(), b.data_params->class_optimizer()},
                              std::pair{a.data_params->inst_optimizer(), b.data_params->inst_optimizer()}})
    if (opt_a->steps() != opt_b->steps()) {
      result.same = ::testing::AssertionFailure()
                    << fmt::format("SparseSGD step count {} after the replay, {} eagerly", opt_b->steps(), opt_a->steps());
      return result;
    }
  const auto sa = a.model->state_dict(), sb = b.model->state_dict();
  for (const auto& [name, t] : sa)
    if (auto r = same_bits(sb.at(name), t, name); !r) {
      result.same = r;
      return result;
    }
  return result;
}

::testing::AssertionResult replay_equals_eager(const ModelFactory& make, int64_t size) {
  AuditResult r = audit_replay(make, size);
  if (!r.changed_kernel_arguments.empty())
    return ::testing::AssertionFailure() << "not replayable: the step changed the kernel arguments "
                                         << fmt::format("{}", fmt::join(r.changed_kernel_arguments, ", "));
  return r.same;
}

// Every net of the registry: its layers' host state (BatchNorm's batch count, ...), the
// optimisers' (step counts, first-step flags, written buffers) and the data parameters'.
class ReplayAudit : public ::testing::TestWithParam<const char*> {};

TEST_P(ReplayAudit, ReplayedStepEqualsTheEagerStep) {
  const std::string name = GetParam();
  const int64_t size = name.rfind("wrn-", 0) == 0 ? 32 : 16;  // WRN ends in an 8x8 average pool
  EXPECT_TRUE(replay_equals_eager([&] { return nets::make_net(name, kClasses, 3); }, size));
}

INSTANTIATE_TEST_SUITE_P(Nets, ReplayAudit, ::testing::Values("tiny-cnn", "resnet18", "wrn-10-2"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

// Every net of the registry is audited above, itself or through a smaller net of the same layers.
TEST(ReplayAudit, CoversEveryRegisteredNet) {
  const std::map<std::string, std::string> audited_as = {
      {"tiny-cnn", "tiny-cnn"},  {"resnet18", "resnet18"}, {"resnet34", "resnet18"},
      {"wrn-28-10", "wrn-10-2"}, {"wrn-16-4", "wrn-10-2"}, {"wrn-D-K", "wrn-10-2"}};
  for (const std::string& name : nets::known_net_names())
    EXPECT_TRUE(audited_as.count(name)) << name << " is not audited: add it (or a smaller net of its layers) to "
                                        << "ReplayAudit's list and to this map";
}

// A layer that keeps host state without declaring it: a per-call counter passed to a kernel by
// value (as Dropout's mask stream is) and mirrored into nothing the step writes. What a new
// layer that forgets declare_own_host_state looks like.
class UndeclaredCounter : public layers::Module {
 public:
  explicit UndeclaredCounter(bool declared) : Module("UndeclaredCounter"), declared_(declared) {}
  Tensor forward(const Tensor& x) override {
    if (is_training()) ++calls_;
    return kernels::mul(x, 1.0 + 1e-3 * static_cast<double>(calls_));
  }

 protected:
  void declare_own_host_state(HostState& state) override {
    if (!declared_) return;
    state.counter("calls", &calls_);
    state.kernel_argument("scale", [this] { return calls_; });
  }

 private:
  bool declared_;
  int64_t calls_ = 0;
};

// A BatchNorm-like host counter mirrored into a buffer only when the state is read.
class UndeclaredBatchCount : public layers::BatchNorm2d {
 public:
  using BatchNorm2d::BatchNorm2d;

 protected:
  void declare_own_host_state(HostState&) override {}  // "forgot" BatchNorm2d's declaration
};

layers::ModulePtr tiny_with(const layers::ModulePtr& extra) {
  auto features = std::make_shared<layers::Sequential>();
  features->push_back(std::make_shared<layers::Conv2d>(3, 4, 3, 1, 1));
  features->push_back(extra);
  features->push_back(std::make_shared<layers::ReLU>());
  features->push_back(std::make_shared<layers::AdaptiveAvgPool2d>(1));
  features->push_back(std::make_shared<layers::Flatten>());
  features->push_back(std::make_shared<layers::Linear>(4, kClasses));
  features->init_parameters(5);
  return features;
}

TEST(ReplayAudit, CatchesALayerWithUndeclaredHostState) {
  const auto r = replay_equals_eager([] { return tiny_with(std::make_shared<UndeclaredCounter>(false)); }, 8);
  EXPECT_FALSE(r) << "an undeclared host counter went unnoticed";
  EXPECT_NE(std::string(r.message()).find("differs"), std::string::npos) << r.message();
}

TEST(ReplayAudit, CatchesABatchNormThatDoesNotDeclareItsCount) {
  const auto r = replay_equals_eager([] { return tiny_with(std::make_shared<UndeclaredBatchCount>(4)); }, 8);
  EXPECT_FALSE(r) << "BatchNorm's batch count left out of the replay went unnoticed";
  EXPECT_NE(std::string(r.message()).find("num_batches_tracked"), std::string::npos) << r.message();
  EXPECT_TRUE(replay_equals_eager([] { return tiny_with(std::make_shared<layers::BatchNorm2d>(4)); }, 8));
}

// Declared, a value passed to kernels by value that changes every step makes the step
// unreplayable (TrainStep keeps it eager); so does dropout's mask stream.
TEST(ReplayAudit, KernelArgumentsThatChangeAreNamed) {
  auto r = audit_replay([] { return tiny_with(std::make_shared<UndeclaredCounter>(true)); }, 8);
  EXPECT_EQ(r.changed_kernel_arguments, std::vector<std::string>{"model.1.scale"});
  r = audit_replay([] { return tiny_with(std::make_shared<layers::Dropout>(0.3, 1)); }, 8);
  EXPECT_EQ(r.changed_kernel_arguments, std::vector<std::string>{"model.1.mask_stream"});
  EXPECT_TRUE(replay_equals_eager([] { return tiny_with(std::make_shared<layers::Dropout>(0.0, 1)); }, 8))
      << "dropout with p = 0 draws nothing: replayable";
}

}  // namespace
}  // namespace dp
