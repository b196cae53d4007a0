#include "nets/tiny_cnn.h"

#include "kernels/ops.h"

namespace dp::nets {

using namespace dp::layers;

TinyCnn::TinyCnn(int64_t num_classes, uint64_t seed, int64_t in_channels) : Module("TinyCnn") {
  features = register_module(
      "features", std::make_shared<Sequential>(std::initializer_list<ModulePtr>{
                      std::make_shared<Conv2d>(in_channels, 8, 3, 1, 1, true),
                      std::make_shared<BatchNorm2d>(8), std::make_shared<ReLU>(),
                      std::make_shared<MaxPool2d>(2, 2), std::make_shared<Conv2d>(8, 16, 3, 1, 1, true),
                      std::make_shared<BatchNorm2d>(16), std::make_shared<ReLU>()}));
  classifier = register_module("classifier", std::make_shared<Linear>(16, num_classes));
  init_parameters(seed);
}

Tensor TinyCnn::forward(const Tensor& x) {
  return classifier->forward(kernels::global_avg_pool(features->forward(x)));
}

}  // namespace dp::nets
