// A small CNN for fast tests (a few thousand parameters, any input of at least 4x4):
// features = [conv3x3(3->8)+BN+ReLU, maxpool 2, conv3x3(8->16)+BN+ReLU], global average pool,
// classifier = Linear(16, classes).
#pragma once
#include <cstdint>
#include <memory>

#include "layers/layers.h"

namespace dp::nets {

class TinyCnn : public layers::Module {
 public:
  TinyCnn(int64_t num_classes, uint64_t seed, int64_t in_channels = 3);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<layers::Sequential> features;
  std::shared_ptr<layers::Linear> classifier;
};

}  // namespace dp::nets
