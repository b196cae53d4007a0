// dp-demo: trains a tiny conv net on a built-in synthetic task on the CPU and prints the loss
// falling. It needs no data and no GPU; it is the smallest end-to-end check of the engine.
//
// The task: 8×8 single-channel images holding a bright bar; the class is the bar's
// orientation and position band (4 classes), under Gaussian noise.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "engine/autograd.h"
#include "engine/rng.h"
#include "kernels/ops.h"
#include "tools/tool_common.h"

using namespace dp;

namespace {

constexpr int64_t kSide = 8, kClasses = 4, kBatch = 64;

void make_batch(uint64_t step, Tensor& images, Tensor& labels) {
  Rng rng(/*seed=*/7, /*stream=*/step);
  std::vector<float> x(kBatch * kSide * kSide);
  std::vector<int64_t> y(kBatch);
  for (int64_t b = 0; b < kBatch; ++b) {
    int64_t c = static_cast<int64_t>(rng.below(kClasses));
    y[b] = c;
    int64_t pos = (c % 2 == 0 ? 1 : 5) + static_cast<int64_t>(rng.below(2));
    for (int64_t i = 0; i < kSide; ++i)
      for (int64_t j = 0; j < kSide; ++j) {
        bool on = c < 2 ? (i == pos) : (j == pos);
        x[(b * kSide + i) * kSide + j] = (on ? 1.0f : 0.0f) + 0.3f * static_cast<float>(rng.normal());
      }
  }
  images = Tensor::from_vector(x, {kBatch, 1, kSide, kSide});
  labels = Tensor::from_vector(y, {kBatch});
}

Tensor param(const Shape& shape, double bound, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& e : v) e = static_cast<float>(rng.uniform(-bound, bound));
  Tensor t = Tensor::from_vector(v, shape);
  t.set_requires_grad(true);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dp-demo: train a tiny conv net on a built-in synthetic task on the CPU (no data, no GPU needed)"};
  dp::tools::add_version_flag(app, "dp-demo");
  CLI11_PARSE(app, argc, argv);
  try {
    Rng init(/*seed=*/1, /*stream=*/0);
    Tensor w1 = param({8, 1, 3, 3}, 1.0 / 3.0, init);
    Tensor g1 = Tensor::ones({8}).set_requires_grad(true);
    Tensor b1 = Tensor::zeros({8}).set_requires_grad(true);
    Tensor w2 = param({16, 8, 3, 3}, 1.0 / std::sqrt(72.0), init);
    Tensor g2 = Tensor::ones({16}).set_requires_grad(true);
    Tensor b2 = Tensor::zeros({16}).set_requires_grad(true);
    Tensor fc = param({kClasses, 16}, 0.25, init);
    Tensor fcb = Tensor::zeros({kClasses}).set_requires_grad(true);
    std::vector<Tensor*> params = {&w1, &g1, &b1, &w2, &g2, &b2, &fc, &fcb};
    std::vector<Tensor> momentum;
    for (Tensor* p : params) momentum.push_back(Tensor::zeros(p->shape()));

    std::printf("dp-demo: a tiny conv net learns bar orientation and position on the CPU\n");
    auto start = std::chrono::steady_clock::now();
    const int steps = 60;
    double running = 0.0;
    for (int step = 1; step <= steps; ++step) {
      Tensor x, y;
      make_batch(static_cast<uint64_t>(step), x, y);
      Tensor h = kernels::relu(kernels::batch_norm(kernels::conv2d(x, w1, Tensor(), 1, 1), g1, b1, Tensor(),
                                           Tensor(), /*training=*/true));
      h = kernels::max_pool2d(h, 2, 2);
      h = kernels::relu(kernels::batch_norm(kernels::conv2d(h, w2, Tensor(), 1, 1), g2, b2, Tensor(), Tensor(),
                                    /*training=*/true));
      Tensor logits = kernels::linear(kernels::global_avg_pool(h), fc, fcb);
      Tensor loss = kernels::cross_entropy(logits, y);
      for (Tensor* p : params) p->zero_grad();
      loss.backward();
      {
        NoGradGuard no_grad;  // SGD with momentum 0.9, lr 0.1
        for (size_t i = 0; i < params.size(); ++i) {
          momentum[i] = kernels::add(kernels::mul(momentum[i], 0.9), params[i]->grad());
          kernels::add_(*params[i], momentum[i], -0.1);
        }
      }
      running = step == 1 ? loss.item() : 0.9 * running + 0.1 * loss.item();
      if (step % 10 == 0 || step == 1)
        std::printf("step %3d  loss %.4f  (running %.4f)\n", step, loss.item(), running);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("done: %d steps in %.2f s\n", steps, secs);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dp-demo: %s\n", e.what());
    return 1;
  }
}
