// ResNet-18/34 exactly as torchvision defines them: module names (conv1, bn1, layer1.0.conv1,
// layer2.0.downsample.0/1, fc), shapes, stride on the block's first conv, and init (convs
// kaiming-normal fan_out/relu, BN γ=1 β=0, fc PyTorch default), so state dicts cross over.
#pragma once
#include <array>
#include <cstdint>
#include <memory>

#include "layers/layers.h"

namespace dp::nets {

class BasicBlock : public layers::Module {
 public:
  BasicBlock(int64_t in_planes, int64_t planes, int64_t stride);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<layers::Conv2d> conv1, conv2;
  std::shared_ptr<layers::BatchNorm2d> bn1, bn2;
  std::shared_ptr<layers::ReLU> relu;
  std::shared_ptr<layers::Sequential> downsample;  // null when the shortcut is the identity
};

class ResNet : public layers::Module {
 public:
  // blocks_per_stage {2,2,2,2} is ResNet-18, {3,4,6,3} ResNet-34.
  ResNet(std::array<int64_t, 4> blocks_per_stage, int64_t num_classes, uint64_t seed);
  Tensor forward(const Tensor& x) override;
  // torchvision's initialisation (applied by the constructor).
  void init_torchvision(uint64_t seed);

  std::shared_ptr<layers::Conv2d> conv1;
  std::shared_ptr<layers::BatchNorm2d> bn1;
  std::shared_ptr<layers::ReLU> relu;
  std::shared_ptr<layers::MaxPool2d> maxpool;
  std::array<std::shared_ptr<layers::Sequential>, 4> layers;
  std::shared_ptr<layers::AdaptiveAvgPool2d> avgpool;
  std::shared_ptr<layers::Linear> fc;
};

std::shared_ptr<ResNet> resnet18(int64_t num_classes = 1000, uint64_t seed = 0);
std::shared_ptr<ResNet> resnet34(int64_t num_classes = 1000, uint64_t seed = 0);

}  // namespace dp::nets
