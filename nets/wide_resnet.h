// The reference's WideResNet-d-k (apple/ml-data-parameters models/wide_resnet.py, itself from
// meliketoy/wide-resnet.pytorch), for any depth d = 6n+4 and width k.
//
// Module names follow the reference, so its checkpoints load one for one:
//   conv1.{weight,bias}                       stem 3x3 conv 3->16 with bias
//   layer{1,2,3}.{i}.bn1.*                    pre-activation BN of the block input
//   layer{1,2,3}.{i}.conv1.{weight,bias}      3x3, stride 1
//   layer{1,2,3}.{i}.bn2.*
//   layer{1,2,3}.{i}.conv2.{weight,bias}      3x3, the stage's stride (stride on conv2)
//   layer{1,2,3}.{i}.shortcut.0.{weight,bias} 1x1 conv on the raw input (first block of a stage
//                                             when the stride or width changes)
//   bn1.*                                     head BN, PyTorch momentum 0.9
//   linear.{weight,bias}
// Every BN state includes running_mean, running_var and num_batches_tracked.
#pragma once
#include <cstdint>
#include <memory>

#include "layers/layers.h"

namespace dp::nets {

class WideBasic : public layers::Module {
 public:
  WideBasic(int64_t in_planes, int64_t planes, double dropout_rate, int64_t stride,
            uint64_t dropout_seed = 0, uint64_t dropout_stream = 0);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<layers::BatchNorm2d> bn1, bn2;
  std::shared_ptr<layers::Conv2d> conv1, conv2;
  std::shared_ptr<layers::Dropout> dropout;
  std::shared_ptr<layers::Sequential> shortcut;  // empty Sequential = identity
};

class WideResNet : public layers::Module {
 public:
  WideResNet(int64_t depth, int64_t widen_factor, int64_t num_classes, uint64_t seed,
             double dropout_rate = 0.0);
  Tensor forward(const Tensor& x) override;

  int64_t depth, widen_factor;
  std::shared_ptr<layers::Conv2d> conv1;
  std::shared_ptr<layers::Sequential> layer1, layer2, layer3;
  std::shared_ptr<layers::BatchNorm2d> bn1;
  std::shared_ptr<layers::Linear> linear;
};

std::shared_ptr<WideResNet> wide_resnet(int64_t depth, int64_t widen_factor, int64_t num_classes,
                                        uint64_t seed = 0);

}  // namespace dp::nets
