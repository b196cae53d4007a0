// Flat parameter storage: a model's float32 parameters live in one buffer and their gradients in
// another, so that the optimiser updates the whole model in one launch (CUDA) or one parallel
// loop (CPU), and one all-reduce over grads() serves data-parallel training.
//
// Construction moves each parameter's values into its slice of weights() and makes the
// parameter a view of it (Tensor::set_data: every handle, the module's included, sees the
// move; names, shapes and memory formats are unchanged). Each parameter's gradient is bound
// to its slice of grads() (Tensor::bind_grad): backward accumulates into it in place, and a
// parameter's zero_grad() zeroes its slice instead of dropping it. Slices start at multiples of
// kAlignment elements (256 bytes: aligned vector loads, and bucket boundaries that fall between
// parameters); the padding between them is zero and stays zero under SGD.
//
// Replacing a parameter tensor afterwards (Module::to(device), assigning a new Tensor to the
// module's slot or to mutable_grad()) detaches it from the flat buffers: move the model first,
// then build the optimiser, as with PyTorch.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace dp::train {

class FlatParameters {
 public:
  static constexpr int64_t kAlignment = 64;

  // float32 parameters on one device, each given once. Gradients already set are kept.
  explicit FlatParameters(std::vector<Tensor> params);

  size_t size() const { return params_.size(); }
  const std::vector<Tensor>& params() const { return params_; }
  int64_t offset(size_t i) const { return offsets_.at(i); }
  int64_t numel(size_t i) const { return params_.at(i).numel(); }
  // Elements of each flat buffer (the parameters plus padding).
  int64_t total() const { return total_; }

  // float32 [total()] buffers on the parameters' device.
  const Tensor& weights() const { return weights_; }
  Tensor& weights() { return weights_; }
  const Tensor& grads() const { return grads_; }
  Tensor& grads() { return grads_; }

  // Parameter i's slice of a flat float32 [total()] buffer (weights(), grads(), or another one
  // laid out alike, e.g. SGD's momentum), in the parameter's shape and memory format.
  Tensor view(const Tensor& flat, size_t i) const;

  void zero_grad();  // one fill of grads()

 private:
  std::vector<Tensor> params_;
  std::vector<int64_t> offsets_;
  int64_t total_ = 0;
  Tensor weights_, grads_;
};

}  // namespace dp::train
