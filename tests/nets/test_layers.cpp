// Module mechanics (names, order, state dict, modes, init) and the nets' structure: parameter
// counts and state_dict names/shapes against PyTorch's lists (tests/nets/golden/*.txt).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "engine/autograd.h"
#include "engine/rng.h"
#include "kernels/ops.h"
#include "layers/init.h"
#include "layers/layers.h"
#include "nets/registry.h"
#include "nets/resnet.h"
#include "nets/tiny_cnn.h"
#include "nets/wide_resnet.h"

using namespace dp;
using namespace dp::layers;

namespace {

std::string golden_dir() {
  const char* src = std::getenv("DP_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/nets/golden/";
}

std::string shape_csv(const Shape& s) {
  std::ostringstream out;
  for (size_t i = 0; i < s.size(); ++i) out << (i ? "," : "") << s[i];
  return out.str();
}

// Compares a module's state_dict with a "name dtype shape" list written by the golden script.
void expect_state_dict_matches(const Module& net, const std::string& list_file) {
  std::ifstream in(golden_dir() + list_file);
  ASSERT_TRUE(in.good()) << "missing " << list_file << "; run scripts/make_net_goldens.py";
  std::vector<std::string> expected;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') expected.push_back(line);
  }
  std::vector<std::string> actual;
  for (const auto& [name, t] : net.state_dict()) {
    actual.push_back(name + " " + dtype_name(t.dtype()) + " " + shape_csv(t.shape()));
  }
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) EXPECT_EQ(actual[i], expected[i]) << "entry " << i;
}

class TwoLayer : public Module {
 public:
  TwoLayer() : Module("TwoLayer") {
    conv = register_module("conv", std::make_shared<Conv2d>(2, 4, 3, 1, 1, false));
    bn = register_module("bn", std::make_shared<BatchNorm2d>(4));
    fc = register_module("fc", std::make_shared<Linear>(4, 3));
    init_parameters(7);
  }
  Tensor forward(const Tensor& x) override {
    return fc->forward(kernels::global_avg_pool(kernels::relu(bn->forward(conv->forward(x)))));
  }
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
  std::shared_ptr<Linear> fc;
};

}  // namespace

TEST(Module, StateDictOrderFollowsPyTorch) {
  auto net = std::make_shared<TwoLayer>();
  std::vector<std::string> names;
  for (const auto& [n, t] : net->state_dict()) names.push_back(n);
  std::vector<std::string> want = {"conv.weight",     "bn.weight",          "bn.bias",
                                   "bn.running_mean", "bn.running_var",     "bn.num_batches_tracked",
                                   "fc.weight",       "fc.bias"};
  EXPECT_EQ(names, want);
  EXPECT_EQ(net->num_parameters(), 4 * 2 * 9 + 4 + 4 + 12 + 3);
  EXPECT_EQ(net->named_parameters().size(), 5u);
  EXPECT_EQ(net->named_buffers().size(), 3u);
  EXPECT_EQ(net->state_dict().at("bn.num_batches_tracked").dtype(), DType::Int64);
  for (const auto& p : net->parameters()) EXPECT_TRUE(p.requires_grad());
}

TEST(Module, TrainEvalIsRecursive) {
  auto net = std::make_shared<TwoLayer>();
  EXPECT_TRUE(net->bn->is_training());
  net->eval();
  EXPECT_FALSE(net->is_training());
  EXPECT_FALSE(net->bn->is_training());
  net->train();
  EXPECT_TRUE(net->conv->is_training());
}

TEST(Module, LoadStateDictRoundTripsAndChecks) {
  auto a = std::make_shared<TwoLayer>();
  auto b = std::make_shared<TwoLayer>();
  b->init_parameters(99);
  EXPECT_NE(a->conv->weight.to_float_vector(), b->conv->weight.to_float_vector());
  b->load_state_dict(a->state_dict());
  EXPECT_EQ(a->conv->weight.to_float_vector(), b->conv->weight.to_float_vector());
  EXPECT_EQ(a->fc->bias.to_float_vector(), b->fc->bias.to_float_vector());

  StateDict bad;
  for (const auto& [n, t] : a->state_dict()) bad.insert(n, n == "fc.weight" ? Tensor::zeros({5, 4}) : t);
  auto before = b->fc->bias.to_float_vector();
  try {
    b->load_state_dict(bad);
    FAIL() << "expected a shape mismatch";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("'fc.weight': source float32 [5, 4] vs target float32 [3, 4]"), std::string::npos) << msg;
  }
  EXPECT_EQ(b->fc->bias.to_float_vector(), before);  // nothing written on failure

  StateDict partial;
  partial.insert("conv.weight", a->conv->weight);
  partial.insert("extra.weight", Tensor::zeros({1}));
  try {
    b->load_state_dict(partial);
    FAIL() << "expected missing/unexpected entries";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("missing 'bn.weight'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unexpected 'extra.weight'"), std::string::npos) << msg;
  }
  StateDict just_conv;
  just_conv.insert("conv.weight", a->conv->weight.clone());
  EXPECT_NO_THROW(b->load_state_dict(just_conv, /*strict=*/false));
}

TEST(Module, BatchNormCountsTrainingBatches) {
  auto net = std::make_shared<TwoLayer>();
  Tensor x = Tensor::ones({2, 2, 4, 4});
  net->forward(x);
  net->forward(x);
  EXPECT_EQ(net->state_dict().at("bn.num_batches_tracked").item(), 2.0);
  net->eval();
  net->forward(x);
  EXPECT_EQ(net->state_dict().at("bn.num_batches_tracked").item(), 2.0);
  // The counter survives a round trip through a state dict.
  auto other = std::make_shared<TwoLayer>();
  other->load_state_dict(net->state_dict());
  other->forward(x);
  EXPECT_EQ(other->state_dict().at("bn.num_batches_tracked").item(), 3.0);
}

TEST(Module, ZeroGradDropsGradients) {
  auto net = std::make_shared<TwoLayer>();
  Tensor x = Tensor::ones({2, 2, 4, 4});
  kernels::sum(net->forward(x)).backward();
  EXPECT_TRUE(net->conv->weight.grad().defined());
  net->zero_grad();
  for (const auto& p : net->parameters()) EXPECT_FALSE(p.grad().defined());
  net->to(Device::cpu());  // a no-op that keeps the parameters trainable
  for (const auto& p : net->parameters()) EXPECT_TRUE(p.requires_grad());
}

TEST(Init, DefaultBoundsAndDeterminism) {
  auto net = std::make_shared<TwoLayer>();
  double bound = 1.0 / std::sqrt(18.0);
  double max_abs = 0;
  for (float v : net->conv->weight.to_float_vector()) max_abs = std::max(max_abs, std::abs(double(v)));
  EXPECT_LE(max_abs, bound);
  EXPECT_GT(max_abs, 0.8 * bound);
  auto same = std::make_shared<TwoLayer>();
  EXPECT_EQ(net->conv->weight.to_float_vector(), same->conv->weight.to_float_vector());
  for (float v : net->bn->weight.to_float_vector()) EXPECT_EQ(v, 1.0f);
  for (float v : net->bn->bias.to_float_vector()) EXPECT_EQ(v, 0.0f);
}

TEST(Init, ResNetConvsAreKaimingNormalFanOut) {
  auto net = nets::resnet18(10, 3);
  auto w = net->layers[3]->children()[0].second->child("conv2");
  auto values = std::static_pointer_cast<Conv2d>(w)->weight.to_double_vector();
  double sq = 0;
  for (double v : values) sq += v * v;
  double stddev = std::sqrt(sq / values.size());
  EXPECT_NEAR(stddev, std::sqrt(2.0 / (512 * 9)), 0.01 * std::sqrt(2.0 / (512 * 9)));
  for (float v : net->bn1->weight.to_float_vector()) EXPECT_EQ(v, 1.0f);
}

TEST(Nets, ResNet18MatchesTorchvision) {
  auto net = nets::resnet18(1000);
  EXPECT_EQ(net->num_parameters(), 11689512);
  expect_state_dict_matches(*net, "resnet18_state_dict.txt");
}

TEST(Nets, ResNet34Count) { EXPECT_EQ(nets::resnet34(1000)->num_parameters(), 21797672); }

TEST(Nets, WideResNet28x10MatchesReference) {
  auto net = nets::make_net("wrn-28-10", 100);
  EXPECT_EQ(net->num_parameters(), 36546980);
  expect_state_dict_matches(*net, "wrn28_10_state_dict.txt");
  auto wrn = std::static_pointer_cast<nets::WideResNet>(net);
  EXPECT_DOUBLE_EQ(wrn->bn1->momentum, 0.9);
  EXPECT_DOUBLE_EQ(std::static_pointer_cast<nets::WideBasic>((*wrn->layer1)[0])->bn1->momentum, 0.1);
}

TEST(Nets, RegistryParsesNames) {
  int64_t d = 0, k = 0;
  EXPECT_TRUE(nets::parse_wrn_name("wrn-40-4", d, k));
  EXPECT_EQ(d, 40);
  EXPECT_EQ(k, 4);
  EXPECT_TRUE(nets::parse_wrn_name("WRN_16_8", d, k));
  EXPECT_EQ(d, 16);
  EXPECT_FALSE(nets::parse_wrn_name("wrn-16", d, k));
  EXPECT_FALSE(nets::parse_wrn_name("resnet18", d, k));
  EXPECT_EQ(nets::make_net("wrn-16-4", 10)->num_parameters(), 2751146);
  EXPECT_EQ(nets::make_net("tiny-cnn", 10)->type_name(), "TinyCnn");
  EXPECT_THROW(nets::make_net("wrn-15-4", 10), Error);  // not 6n+4
  try {
    nets::make_net("resnet19", 10);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.hint().find("resnet18"), std::string::npos);
  }
}

TEST(Nets, TinyCnnForwardShape) {
  auto net = nets::make_net("tiny-cnn", 5, 1);
  Tensor y = net->forward(Tensor::ones({3, 3, 8, 8}));
  EXPECT_EQ(y.shape(), (Shape{3, 5}));
}

TEST(Init, ParallelFillEqualsSequentialDraws) {
  Tensor t = Tensor::zeros({3, 70000});
  Rng a(5, 9);
  init::uniform_(t, -1.0, 1.0, a);
  Rng b(5, 9);
  auto v = t.to_float_vector();
  for (size_t i = 0; i < v.size(); i += 997) {
    b.set_counter(2 * i);
    ASSERT_EQ(v[i], static_cast<float>(b.uniform(-1.0, 1.0))) << i;
  }
  EXPECT_EQ(a.counter(), 2u * 3 * 70000);
  Tensor n = Tensor::zeros({50000});
  Rng c(5, 10);
  init::normal_(n, 0.0, 1.0, c);
  Rng d(5, 10);
  d.set_counter(4 * 31337);
  EXPECT_EQ(n.to_float_vector()[31337], static_cast<float>(d.normal()));
}

TEST(Module, MovesToCudaAndBack) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build or machine";
  auto net = std::make_shared<TwoLayer>();
  Tensor x = Tensor::ones({2, 2, 4, 4});
  net->eval();
  auto cpu_out = net->forward(x).to_float_vector();
  net->to(Device::cuda());
  EXPECT_TRUE(net->device().is_cuda());
  for (const auto& [n, t] : net->state_dict()) EXPECT_TRUE(t.device().is_cuda()) << n;
  auto gpu_out = net->forward(x.to(Device::cuda())).to_float_vector();
  for (size_t i = 0; i < cpu_out.size(); ++i) EXPECT_NEAR(gpu_out[i], cpu_out[i], 1e-5);
  net->to(Device::cpu());
  EXPECT_TRUE(net->device().is_cpu());
}

// A channels-last batch through whole nets on the CPU gives exactly the NCHW step (the CPU runs
// its NCHW kernels between conversions), and parameter gradients stay NCHW for the optimiser.
TEST(Nets, ChannelsLastInputGivesTheSameStep) {
  for (const char* arch : {"resnet18", "wrn-16-2"}) {
    SCOPED_TRACE(arch);
    const int64_t size = std::string(arch) == "resnet18" ? 48 : 32;
    Rng rng(5, 0);
    std::vector<float> pixels(static_cast<size_t>(3 * 3 * size * size));
    for (float& v : pixels) v = static_cast<float>(rng.uniform(-1, 1));
    Tensor x = Tensor::from_vector(pixels, {3, 3, size, size});
    Tensor labels = Tensor::from_vector(std::vector<int64_t>{1, 4, 7}, {3});
    std::vector<std::vector<std::vector<float>>> runs;  // [format][parameter] gradients, then logits
    for (MemoryFormat f : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
      auto net = nets::make_net(arch, 10, 3);
      Tensor logits = net->forward(kernels::convert(x, DType::Float32, f));
      kernels::cross_entropy(logits, labels).backward();
      std::vector<std::vector<float>> r;
      for (const auto& [name, p] : net->named_parameters()) {
        EXPECT_FALSE(p.grad().is_channels_last()) << name;
        r.push_back(p.grad().to_float_vector());
      }
      r.push_back(logits.to_float_vector());
      for (const auto& [name, b] : net->named_buffers()) r.push_back(b.to_float_vector());
      runs.push_back(r);
    }
    ASSERT_EQ(runs[0].size(), runs[1].size());
    for (size_t i = 0; i < runs[0].size(); ++i) EXPECT_EQ(runs[0][i], runs[1][i]) << "tensor " << i;
  }
}
