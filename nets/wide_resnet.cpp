#include "nets/wide_resnet.h"

#include <fmt/format.h>

#include "kernels/ops.h"

namespace dp::nets {

using namespace dp::layers;

WideBasic::WideBasic(int64_t in_planes, int64_t planes, double dropout_rate, int64_t stride,
                     uint64_t dropout_seed, uint64_t dropout_stream)
    : Module("WideBasic") {
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(in_planes));
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in_planes, planes, 3, 1, 1, true));
  dropout = register_module("dropout", std::make_shared<Dropout>(dropout_rate, dropout_seed, dropout_stream));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, stride, 1, true));
  shortcut = register_module("shortcut", std::make_shared<Sequential>());
  if (stride != 1 || in_planes != planes) {
    shortcut->push_back(std::make_shared<Conv2d>(in_planes, planes, 1, stride, 0, true));
  }
}

Tensor WideBasic::forward(const Tensor& x) {
  Tensor out = dropout->forward(conv1->forward(bn1->forward_relu(x)));
  out = conv2->forward(bn2->forward_relu(out));
  return kernels::add(out, shortcut->forward(x));
}

WideResNet::WideResNet(int64_t depth, int64_t k, int64_t num_classes, uint64_t seed, double dropout_rate)
    : Module("WideResNet"), depth(depth), widen_factor(k) {
  DP_CHECK(depth >= 10 && (depth - 4) % 6 == 0,
           fmt::format("WideResNet depth {} is not of the form 6n+4 (n >= 1)", depth),
           "use a depth such as 10, 16, 22, 28 or 40");
  DP_CHECK(k >= 1 && num_classes > 0,
           fmt::format("WideResNet: width {} and num_classes {} must be positive", k, num_classes), "");
  const int64_t n = (depth - 4) / 6;
  const int64_t widths[4] = {16, 16 * k, 32 * k, 64 * k};
  conv1 = register_module("conv1", std::make_shared<Conv2d>(3, widths[0], 3, 1, 1, true));
  int64_t in_planes = widths[0];
  uint64_t block_id = 0;
  auto make_stage = [&](int64_t planes, int64_t stride) {
    auto seq = std::make_shared<Sequential>();
    for (int64_t b = 0; b < n; ++b) {
      // Each block's dropout masks come from their own range of Philox streams.
      seq->push_back(std::make_shared<WideBasic>(in_planes, planes, dropout_rate, b == 0 ? stride : 1,
                                                 seed, (++block_id) << 40));
      in_planes = planes;
    }
    return seq;
  };
  layer1 = register_module("layer1", make_stage(widths[1], 1));
  layer2 = register_module("layer2", make_stage(widths[2], 2));
  layer3 = register_module("layer3", make_stage(widths[3], 2));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(widths[3], 1e-5, 0.9));
  linear = register_module("linear", std::make_shared<Linear>(widths[3], num_classes));
  init_parameters(seed);
}

Tensor WideResNet::forward(const Tensor& x) {
  Tensor out = conv1->forward(x);
  out = layer3->forward(layer2->forward(layer1->forward(out)));
  out = bn1->forward_relu(out);
  // The reference pools with a fixed 8x8 window (global for 32x32 inputs).
  out = out.size(2) == 8 && out.size(3) == 8 ? kernels::global_avg_pool(out)
                                             : kernels::flatten(kernels::avg_pool2d(out, 8, 8), 1);
  return linear->forward(out);
}

std::shared_ptr<WideResNet> wide_resnet(int64_t depth, int64_t widen_factor, int64_t num_classes,
                                        uint64_t seed) {
  return std::make_shared<WideResNet>(depth, widen_factor, num_classes, seed);
}

}  // namespace dp::nets
