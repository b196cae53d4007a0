// The sgd family (kernels/sgd.h): the fused SGD update of one buffer, CUDA bit for bit against the
// CPU. The optimiser over flat parameters (train/sgd.h) is tested in tests/train.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/training_ops.h"
#include "tests/common/devices.h"

namespace {

using dp::Tensor;
using dp::testing::vec;

class SgdCuda : public dp::testing::CudaTest {};

// The update of one buffer (a parameter, or a whole model's flat buffer), with and without
// momentum, bit for bit; the rate is read from a device scalar.
TEST_F(SgdCuda, BitIdenticalToCpu) {
  for (float momentum : {0.0f, 0.9f}) {
    for (bool nesterov : {false, true}) {
      if (nesterov && momentum == 0.0f) continue;
      const int64_t n = 1000003;  // not a multiple of any block or vector width
      std::mt19937 gen(9);
      std::normal_distribution<float> normal(0.f, 1.f);
      std::vector<float> w_host(n);
      for (float& v : w_host) v = normal(gen);
      Tensor w = vec(w_host), d_w = w.to(dp::Device::cuda());
      Tensor buf = momentum != 0.0f ? Tensor::zeros({n}) : Tensor();
      Tensor d_buf = momentum != 0.0f ? buf.to(dp::Device::cuda()) : Tensor();
      Tensor lr = Tensor::scalar(0.1), d_lr = lr.to(dp::Device::cuda());
      const dp::kernels::SgdHyper h{momentum, 5e-4f, nesterov};
      for (int step = 0; step < 3; ++step) {
        std::vector<float> g_host(n);
        for (float& v : g_host) v = normal(gen);
        Tensor g = vec(g_host);
        dp::kernels::sgd_step_(w, g, buf, lr, h, step == 0);
        dp::kernels::sgd_step_(d_w, g.to(dp::Device::cuda()), d_buf, d_lr, h, step == 0);
      }
      ASSERT_EQ(d_w.to_float_vector(), w.to_float_vector()) << "momentum " << momentum << " nesterov " << nesterov;
      if (momentum != 0.0f) {
        ASSERT_EQ(d_buf.to_float_vector(), buf.to_float_vector());
      }
    }
  }
}

}  // namespace
