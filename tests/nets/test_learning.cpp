// A real learning check on CPU: WideResNet-10-1 (the reference block structure) fits 256
// CIFAR-like synthetic images (10 classes, 3x32x32) with SGD + momentum written inline
// (the optimiser library lives in train/).
#include <gtest/gtest.h>

#include <chrono>
#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/rng.h"
#include "kernels/ops.h"
#include "nets/registry.h"

using namespace dp;

namespace {

// Class c is an oriented grating (angle c·π/classes, 4 cycles across the image, a random phase
// per sample, per-class channel weights) under Gaussian noise of the same amplitude: what a
// conv net must detect with its filters, not a fixed pixel pattern.
void make_dataset(int64_t n, int64_t classes, std::vector<float>& images, std::vector<int64_t>& labels) {
  const int64_t side = 32, pixels = 3 * side * side;
  Rng rng(11, 1);
  std::vector<double> colour(classes * 3);
  for (auto& w : colour) w = rng.uniform(0.5, 1.0);
  images.resize(n * pixels);
  labels.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % classes;
    labels[i] = c;
    const double angle = 3.141592653589793 * double(c) / double(classes);
    const double phase = rng.uniform(0.0, 6.283185307179586);
    const double fx = std::cos(angle) * 2 * 3.141592653589793 * 4 / side;
    const double fy = std::sin(angle) * 2 * 3.141592653589793 * 4 / side;
    for (int64_t ch = 0; ch < 3; ++ch) {
      for (int64_t y = 0; y < side; ++y) {
        for (int64_t x = 0; x < side; ++x) {
          double v = colour[c * 3 + ch] * std::sin(fx * x + fy * y + phase) + rng.normal();
          images[i * pixels + (ch * side + y) * side + x] = static_cast<float>(v);
        }
      }
    }
  }
}

}  // namespace

TEST(Learning, WideResNet10x1FitsSyntheticCifar) {
  const int64_t n = 256, classes = 10, batch = 64;
  std::vector<float> images;
  std::vector<int64_t> labels;
  make_dataset(n, classes, images, labels);
  Tensor x_all = Tensor::from_vector(images, {n, 3, 32, 32});
  Tensor y_all = Tensor::from_vector(labels, {n});

  auto net = nets::make_net("wrn-10-1", classes, 5);
  net->train();
  const double lr = 0.05, momentum = 0.9;
  std::vector<Tensor> velocity;
  for (const auto& p : net->parameters()) velocity.push_back(Tensor::zeros(p.shape()));
  const int max_epochs = 20;
  auto start = std::chrono::steady_clock::now();
  double first_loss = 0, last_loss = 0, accuracy = 0, first_accuracy = 0;
  int epoch = 0;
  for (; epoch < max_epochs; ++epoch) {
    int64_t correct = 0;
    double loss_sum = 0;
    for (int64_t b = 0; b < n / batch; ++b) {
      Tensor x = x_all.narrow0(b * batch, batch);
      Tensor y = y_all.narrow0(b * batch, batch);
      net->zero_grad();
      Tensor logits = net->forward(x);
      Tensor loss = kernels::cross_entropy(logits, y);
      loss.backward();
      {
        NoGradGuard no_grad;
        auto params = net->parameters();
        for (size_t k = 0; k < params.size(); ++k) {  // v = momentum·v + g; p -= lr·v
          kernels::add_(velocity[k], velocity[k], momentum - 1.0);
          kernels::add_(velocity[k], params[k].grad());
          kernels::add_(params[k], velocity[k], -lr);
        }
      }
      loss_sum += loss.item();
      auto l = logits.to_float_vector();
      for (int64_t i = 0; i < batch; ++i) {
        int64_t best = 0;
        for (int64_t c = 1; c < classes; ++c) {
          if (l[i * classes + c] > l[i * classes + best]) best = c;
        }
        correct += best == labels[b * batch + i];
      }
    }
    last_loss = loss_sum / double(n / batch);
    accuracy = double(correct) / double(n);
    if (epoch == 0) first_loss = last_loss, first_accuracy = accuracy;
    std::printf("epoch %d: loss %.4f, train accuracy %.3f\n", epoch + 1, last_loss, accuracy);
    if (accuracy >= 0.99 && last_loss < 0.1) break;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("WRN-10-1 on 256 synthetic images: %d epochs, loss %.3f -> %.4f, train accuracy %.3f -> %.3f, %.1f s\n",
              std::min(epoch + 1, max_epochs), first_loss, last_loss, first_accuracy, accuracy, seconds);
  EXPECT_GE(accuracy, 0.95);
  EXPECT_LT(last_loss, 0.25);
  EXPECT_LT(last_loss, 0.2 * first_loss);
}
