// Model SGD with PyTorch's exact semantics (torch.optim.SGD, dampening 0): per parameter,
//   g ← g + wd·w                 (coupled weight decay, on every parameter incl. BN and biases)
//   buf ← g on the parameter's first step, else buf ← momentum·buf + g
//   w ← w − lr·(g + momentum·buf)  (Nesterov)   or   w ← w − lr·buf
// The "+ α·x" operations are fused multiply-adds (one rounding), as PyTorch's vectorised
// add(alpha=) and CUDA kernels compute them; momentum·buf is rounded before adding g.
// All parameters are updated by one fused multi-tensor call: a loop over (param, grad, buf)
// spans on CPU, one launch over a table of pointers per 64 tensors on CUDA.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace dp::train {

struct SgdOptions {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD {
 public:
  // float32 parameters, all on one device. A parameter whose grad is undefined is skipped.
  SGD(std::vector<Tensor> params, SgdOptions options);
  void step();
  void zero_grad();
  void set_lr(double lr) { options_.lr = lr; }
  double lr() const { return options_.lr; }
  const SgdOptions& options() const { return options_; }
  // Undefined until the parameter's first step (PyTorch: no 'momentum_buffer' yet).
  const std::vector<Tensor>& momentum_buffers() const { return bufs_; }
  std::vector<Tensor>& momentum_buffers() { return bufs_; }
  const std::vector<Tensor>& params() const { return params_; }

 private:
  std::vector<Tensor> params_, bufs_;
  SgdOptions options_;
};

// The CPU multi-tensor update on raw spans (also used by the benchmarks).
struct SgdSpan {
  float* w;
  const float* g;
  float* buf;
  int64_t n;
  bool first;  // buf ← g
};
void sgd_step_cpu(const std::vector<SgdSpan>& spans, float lr, float momentum, float weight_decay,
                  bool nesterov);

}  // namespace dp::train
