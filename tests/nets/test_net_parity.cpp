// Whole-net parity with PyTorch 1.13 (CPU, float32) through the goldens written by
// scripts/make_net_goldens.py: torchvision ResNet-18 (10 classes, input 2x3x64x64) and the
// reference WideResNet-16-2 (10 classes, input 2x3x32x32), in train and eval mode.
// Checked: logits and loss (relative error < 1e-5), every parameter's gradient (< 1e-4, in full
// or at 1024 sampled indices plus sum / sum of squares over all elements), buffers after the
// forward (BN running statistics < 1e-5, num_batches_tracked exactly).
// A gradient that is zero in exact arithmetic (a conv bias right before a training-mode BN,
// which subtracts any per-channel constant) holds only rounding noise on both sides, so a
// relative error means nothing there: gradients whose reference norm is below 1e-5 of the
// net's largest gradient norm must instead differ by less than that bound in norm.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "engine/rng.h"
#include "golden_io.h"
#include "kernels/ops.h"
#include "nets/registry.h"

using namespace dp;

namespace {

constexpr uint64_t kGoldenSeed = 20240601;
constexpr int64_t kSample = 1024;

using Golden = std::map<std::string, Tensor>;

std::string golden_path(const std::string& file) {
  const char* src = std::getenv("DP_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/nets/golden/" + file;
}

const Tensor& get(const Golden& g, const std::string& name) {
  auto it = g.find(name);
  if (it == g.end()) DP_THROW("golden entry '" + name + "' missing", "regenerate the goldens");
  return it->second;
}

// ||a - b|| / ||b|| over float64 copies.
double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// The script's weights: entry i of the state dict gets float32(lo + (hi-lo)·u), u from Philox
// stream i; integer buffers are stored.
layers::StateDict initial_state(const layers::Module& net, const Golden& g) {
  layers::StateDict out;
  uint64_t stream = 0;
  for (const auto& [name, t] : net.state_dict()) {
    if (t.dtype() == DType::Int64) {
      out.insert(name, get(g, "state/" + name));
    } else {
      auto range = get(g, "range/" + name).to_double_vector();
      std::vector<float> v(static_cast<size_t>(t.numel()));
      for (size_t i = 0; i < v.size(); ++i) {
        double u = philox_uniform(kGoldenSeed, stream, i);
        v[i] = static_cast<float>(range[0] + (range[1] - range[0]) * u);
      }
      out.insert(name, Tensor::from_vector(v, t.shape()));
    }
    ++stream;
  }
  return out;
}

void check_mode(layers::Module& net, const Golden& g, const layers::StateDict& init, bool training) {
  const std::string mode = training ? "train" : "eval";
  SCOPED_TRACE(mode);
  net.load_state_dict(init);
  net.train(training);
  net.zero_grad();
  Tensor logits = net.forward(get(g, "input"));
  Tensor loss = kernels::cross_entropy(logits, get(g, "labels"));
  loss.backward();

  ASSERT_EQ(logits.shape(), get(g, mode + "/logits").shape());
  const double logits_err = rel_err(logits.to_double_vector(), get(g, mode + "/logits").to_double_vector());
  const double loss_err = rel_err(loss.to_double_vector(), get(g, mode + "/loss").to_double_vector());
  EXPECT_LT(logits_err, 1e-5);
  EXPECT_LT(loss_err, 1e-5);

  auto reference_norm = [&](const std::string& name) {
    if (auto full = g.find(mode + "/grad/" + name); full != g.end()) {
      double sq = 0;
      for (double v : full->second.to_double_vector()) sq += v * v;
      return std::sqrt(sq);
    }
    return std::sqrt(get(g, mode + "/grad_stats/" + name).to_double_vector()[1]);
  };
  double largest = 0;
  for (const auto& [name, p] : net.named_parameters()) largest = std::max(largest, reference_norm(name));
  const double zero_bound = 1e-5 * largest;

  int checked = 0, zero = 0;
  double worst_grad = 0;
  for (const auto& [name, p] : net.named_parameters()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(p.grad().defined());
    std::vector<double> grad = p.grad().to_double_vector();
    if (reference_norm(name) < zero_bound) {
      double diff = 0;
      auto want = get(g, mode + "/grad/" + name).to_double_vector();
      for (size_t i = 0; i < grad.size(); ++i) diff += (grad[i] - want[i]) * (grad[i] - want[i]);
      EXPECT_LT(std::sqrt(diff), zero_bound);
      ++zero;
    } else if (auto full = g.find(mode + "/grad/" + name); full != g.end()) {
      worst_grad = std::max(worst_grad, rel_err(grad, full->second.to_double_vector()));
      EXPECT_LT(rel_err(grad, full->second.to_double_vector()), 1e-4);
    } else {
      const int64_t n = p.numel();
      std::vector<double> sampled(kSample);
      for (int64_t i = 0; i < kSample; ++i) sampled[i] = grad[static_cast<size_t>(i * n / kSample)];
      const double err = rel_err(sampled, get(g, mode + "/grad_sample/" + name).to_double_vector());
      worst_grad = std::max(worst_grad, err);
      EXPECT_LT(err, 1e-4);
      double sum = 0, sumsq = 0;
      for (double v : grad) sum += v, sumsq += v * v;
      auto stats = get(g, mode + "/grad_stats/" + name).to_double_vector();
      // |Σa - Σb| ≤ √n·||a - b||, so scale the sum's error by √n·||b||.
      EXPECT_LT(std::abs(sum - stats[0]) / std::sqrt(double(n) * stats[1]), 1e-4);
      EXPECT_LT(std::abs(std::sqrt(sumsq) - std::sqrt(stats[1])) / std::sqrt(stats[1]), 1e-4);
    }
    ++checked;
  }
  EXPECT_GT(checked, 0);
  std::printf("%s: logits rel err %.2e, loss %.2e, worst gradient %.2e over %d parameters (%d exact zeros)\n",
              mode.c_str(), logits_err, loss_err, worst_grad, checked, zero);
  // Only the conv biases of the WideResNet in training mode may be exact zeros.
  if (!training) {
    EXPECT_EQ(zero, 0);
  }

  for (const auto& [name, b] : net.state_dict()) {
    if (name.find("running_") == std::string::npos && name.find("num_batches") == std::string::npos) continue;
    SCOPED_TRACE(name);
    const Tensor& want = get(g, mode + "/state/" + name);
    if (b.dtype() == DType::Int64) {
      EXPECT_EQ(b.item(), want.item());
    } else {
      EXPECT_LT(rel_err(b.to_double_vector(), want.to_double_vector()), 1e-5);
    }
  }
}

void run_parity(const std::string& net_name, const std::string& file) {
  Golden g = dp::testing::read_golden(golden_path(file));
  // The C++ and Python Philox streams must agree before anything else can.
  auto words = get(g, "check/philox_words").to_double_vector();
  for (size_t i = 0; i < words.size(); ++i) ASSERT_EQ(words[i], double(philox_u32(kGoldenSeed, 7, i)));
  auto net = nets::make_net(net_name, 10, 0);
  layers::StateDict init = initial_state(*net, g);
  check_mode(*net, g, init, true);
  check_mode(*net, g, init, false);
}

}  // namespace

TEST(NetParity, ResNet18MatchesPyTorch) { run_parity("resnet18", "resnet18_10cls_64px.dpt"); }
TEST(NetParity, WideResNet16x2MatchesPyTorch) { run_parity("wrn-16-2", "wrn16_2_10cls_32px.dpt"); }
