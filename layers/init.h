// Initialisers (host-side Philox draws, then one copy to the tensor's device).
#pragma once
#include <cstdint>

#include "engine/rng.h"
#include "engine/tensor.h"

namespace dp::layers::init {

// Fans as PyTorch computes them: fan_in = dim1 · receptive field, fan_out = dim0 · receptive field.
int64_t fan_in(const Tensor& w);
int64_t fan_out(const Tensor& w);

void uniform_(Tensor& t, double lo, double hi, Rng& rng);
void normal_(Tensor& t, double mean, double stddev, Rng& rng);
void constant_(Tensor& t, double value);

// PyTorch's default for Conv2d/Linear weights: kaiming_uniform(a=√5) = U(±1/√fan_in).
void default_weight_(Tensor& w, Rng& rng);
// PyTorch's default bias: U(±1/√fan_in of the weight).
void default_bias_(Tensor& b, int64_t fan_in, Rng& rng);
// kaiming_normal_(mode="fan_out", nonlinearity="relu"): N(0, 2/fan_out), as torchvision's ResNet.
void kaiming_normal_fan_out_relu_(Tensor& w, Rng& rng);

}  // namespace dp::layers::init
