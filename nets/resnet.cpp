#include "nets/resnet.h"

#include "engine/autograd.h"
#include "layers/init.h"
#include "kernels/ops.h"

namespace dp::nets {

using namespace dp::layers;

BasicBlock::BasicBlock(int64_t in_planes, int64_t planes, int64_t stride) : Module("BasicBlock") {
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in_planes, planes, 3, stride, 1, false));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  relu = register_module("relu", std::make_shared<ReLU>());
  conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, 1, 1, false));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  if (stride != 1 || in_planes != planes) {
    downsample = register_module(
        "downsample", std::make_shared<Sequential>(std::initializer_list<ModulePtr>{
                          std::make_shared<Conv2d>(in_planes, planes, 1, stride, 0, false),
                          std::make_shared<BatchNorm2d>(planes)}));
  }
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = bn1->forward_relu(conv1->forward(x));
  out = bn2->forward(conv2->forward(out));
  Tensor identity = downsample ? downsample->forward(x) : x;
  return kernels::add_relu(out, identity);
}

ResNet::ResNet(std::array<int64_t, 4> blocks, int64_t num_classes, uint64_t seed) : Module("ResNet") {
  DP_CHECK(num_classes > 0, "ResNet: num_classes must be positive", "");
  conv1 = register_module("conv1", std::make_shared<Conv2d>(3, 64, 7, 2, 3, false));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(64));
  relu = register_module("relu", std::make_shared<ReLU>());
  maxpool = register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));
  int64_t in_planes = 64;
  for (int stage = 0; stage < 4; ++stage) {
    int64_t planes = int64_t{64} << stage;
    auto seq = std::make_shared<Sequential>();
    for (int64_t b = 0; b < blocks[stage]; ++b) {
      int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
      seq->push_back(std::make_shared<BasicBlock>(in_planes, planes, stride));
      in_planes = planes;
    }
    layers[stage] = register_module("layer" + std::to_string(stage + 1), seq);
  }
  avgpool = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1));
  fc = register_module("fc", std::make_shared<Linear>(512, num_classes));
  init_torchvision(seed);
}

void ResNet::init_torchvision(uint64_t seed) {
  NoGradGuard no_grad;
  for (auto& [name, m] : named_modules()) {
    InitContext ctx(seed, name);
    if (auto* conv = dynamic_cast<Conv2d*>(m)) {
      Rng rng = ctx.rng_for("weight");
      init::kaiming_normal_fan_out_relu_(conv->weight, rng);
    } else {
      m->reset_parameters(ctx);  // BN: γ=1, β=0; Linear: PyTorch default
    }
  }
}

Tensor ResNet::forward(const Tensor& x) {
  Tensor y = maxpool->forward(bn1->forward_relu(conv1->forward(x)));  // bn1 + relu fused
  for (auto& layer : layers) y = layer->forward(y);
  y = kernels::flatten(avgpool->forward(y), 1);
  return fc->forward(y);
}

std::shared_ptr<ResNet> resnet18(int64_t num_classes, uint64_t seed) {
  return std::make_shared<ResNet>(std::array<int64_t, 4>{2, 2, 2, 2}, num_classes, seed);
}

std::shared_ptr<ResNet> resnet34(int64_t num_classes, uint64_t seed) {
  return std::make_shared<ResNet>(std::array<int64_t, 4>{3, 4, 6, 3}, num_classes, seed);
}

}  // namespace dp::nets
