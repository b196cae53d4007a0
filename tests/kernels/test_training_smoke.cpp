// End-to-end smoke test: a small conv net learns a synthetic task with SGD + momentum, and the
// whole run is bit-identical when repeated (also with a different thread count).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "engine/autograd.h"
#include "engine/rng.h"
#include "engine/thread_pool.h"
#include "kernels/ops.h"

namespace dp {
namespace {

constexpr int64_t kClasses = 4, kSamples = 128, kBatch = 32, kSteps = 50;
constexpr int64_t kImage = 8;

struct Net {
  Tensor c1w, c1b, bn1g, bn1b, bn1m, bn1v, c2w, bn2g, bn2b, bn2m, bn2v, fcw, fcb;
  std::vector<Tensor*> params() { return {&c1w, &c1b, &bn1g, &bn1b, &c2w, &bn2g, &bn2b, &fcw, &fcb}; }
  std::vector<Tensor*> everything() {
    auto p = params();
    for (Tensor* b : {&bn1m, &bn1v, &bn2m, &bn2v}) p.push_back(b);
    return p;
  }
};

Tensor uniform(const Shape& shape, Rng& rng, double bound) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& e : v) e = static_cast<float>(rng.uniform(-bound, bound));
  return Tensor::from_vector(v, shape);
}

Net make_net(uint64_t seed) {
  Rng rng(seed, 1);
  Net n;
  n.c1w = uniform({8, 3, 3, 3}, rng, 1.0 / std::sqrt(27.0));
  n.c1b = uniform({8}, rng, 0.1);
  n.bn1g = Tensor::ones({8});
  n.bn1b = Tensor::zeros({8});
  n.bn1m = Tensor::zeros({8});
  n.bn1v = Tensor::ones({8});
  n.c2w = uniform({16, 8, 3, 3}, rng, 1.0 / std::sqrt(72.0));
  n.bn2g = Tensor::ones({16});
  n.bn2b = Tensor::zeros({16});
  n.bn2m = Tensor::zeros({16});
  n.bn2v = Tensor::ones({16});
  n.fcw = uniform({kClasses, 16}, rng, 0.25);
  n.fcb = Tensor::zeros({kClasses});
  for (Tensor* p : n.params()) p->set_requires_grad(true);
  return n;
}

Tensor forward(Net& n, const Tensor& x) {
  Tensor h = kernels::conv2d(x, n.c1w, n.c1b, 1, 1);
  h = kernels::relu(kernels::batch_norm(h, n.bn1g, n.bn1b, n.bn1m, n.bn1v, true));
  h = kernels::max_pool2d(h, 2, 2);
  h = kernels::conv2d(h, n.c2w, Tensor(), 1, 1);
  h = kernels::relu(kernels::batch_norm(h, n.bn2g, n.bn2b, n.bn2m, n.bn2v, true));
  return kernels::linear(kernels::global_avg_pool(h), n.fcw, n.fcb);
}

// Class templates plus noise; learnable but not trivially separable at initialisation.
void make_data(uint64_t seed, Tensor& images, Tensor& labels) {
  Rng rng(seed, 2);
  const int64_t pixels = 3 * kImage * kImage;
  std::vector<std::vector<double>> templates(kClasses, std::vector<double>(pixels));
  for (auto& t : templates)
    for (double& v : t) v = rng.normal();
  std::vector<float> x(static_cast<size_t>(kSamples * pixels));
  std::vector<int64_t> y(kSamples);
  for (int64_t i = 0; i < kSamples; ++i) {
    y[i] = static_cast<int64_t>(rng.below(kClasses));
    for (int64_t j = 0; j < pixels; ++j)
      x[i * pixels + j] = static_cast<float>(templates[y[i]][j] + 1.0 * rng.normal());
  }
  images = Tensor::from_vector(x, {kSamples, 3, kImage, kImage});
  labels = Tensor::from_vector(y, {kSamples});
}

struct RunResult {
  std::vector<double> losses;
  Net net;
};

RunResult train(uint64_t seed) {
  RunResult out{{}, make_net(seed)};
  Net& n = out.net;
  Tensor images, labels;
  make_data(seed, images, labels);
  std::vector<Tensor> momentum;
  for (Tensor* p : n.params()) momentum.push_back(Tensor::zeros(p->shape()));
  const double lr = 0.05;
  for (int64_t step = 0; step < kSteps; ++step) {
    const int64_t start = (step * kBatch) % kSamples;
    Tensor loss = kernels::cross_entropy(forward(n, images.narrow0(start, kBatch)), labels.narrow0(start, kBatch));
    out.losses.push_back(loss.item());
    for (Tensor* p : n.params()) p->zero_grad();
    loss.backward();
    NoGradGuard no_grad;
    auto params = n.params();
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor v = kernels::mul(momentum[i], 0.9);  // v = 0.9·v + g
      kernels::add_(v, params[i]->grad());
      momentum[i] = v;
      kernels::add_(*params[i], v, -lr);
    }
  }
  return out;
}

double mean_of(const std::vector<double>& v, size_t begin, size_t end) {
  double s = 0;
  for (size_t i = begin; i < end; ++i) s += v[i];
  return s / static_cast<double>(end - begin);
}

TEST(TrainingSmoke, LossFallsAndRunsAreBitIdentical) {
  RunResult a = train(17);
  const double first = mean_of(a.losses, 0, 4), last = mean_of(a.losses, kSteps - 4, kSteps);
  // Chance level is log(4) = 1.386; the net must get below a tenth of its starting loss (it reaches ~0.03x).
  EXPECT_LT(last, 0.1 * first) << "first steps " << first << ", last steps " << last;
  for (double l : a.losses) ASSERT_TRUE(std::isfinite(l));
  std::printf("mean loss over the first 4 steps %.4f, last 4 steps %.4f\n", first, last);

  const int saved = num_threads();
  set_num_threads(saved == 1 ? 2 : 1);  // thread count must not change a single bit
  RunResult b = train(17);
  set_num_threads(saved);
  EXPECT_EQ(a.losses, b.losses);
  auto wa = a.net.everything(), wb = b.net.everything();
  for (size_t i = 0; i < wa.size(); ++i) {
    std::vector<float> x = wa[i]->to_float_vector(), y = wb[i]->to_float_vector();
    ASSERT_EQ(x.size(), y.size());
    EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)), 0) << "tensor " << i << " differs";
  }
}

}  // namespace
}  // namespace dp
