// Reverse-mode automatic differentiation over a graph recorded as ops run.
//
// Each differentiable op that sees an input requiring grad creates a Node, attaches it to its
// output (out.grad_fn()), and keeps the inputs it must send gradients to. backward() walks the
// graph in topological order, summing the gradients of a tensor used several times (residual
// connections), and accumulates into the .grad of leaves. Tensors saved for the backward pass
// remember their storage version: modifying one in place before backward() is an error.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "engine/tensor.h"

namespace dp {

// A tensor kept for the backward pass, with the storage version it had when saved.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t) : tensor_(t), version_(t.defined() ? t.version() : 0) {}
  // Returns the tensor, or throws when it was modified in place since it was saved.
  const Tensor& get(const char* op_name) const;
  void reset() { tensor_ = Tensor(); }

 private:
  Tensor tensor_;
  uint64_t version_ = 0;
};

struct Node {
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // Gradients with respect to each entry of `inputs` (undefined where none flows).
  virtual std::vector<Tensor> backward(const Tensor& grad_output) = 0;
  // Frees saved tensors once backward has run (unless the graph is retained).
  virtual void release() {}

  std::vector<Tensor> inputs;  // the op's differentiable inputs, in backward()'s order
  bool released = false;
};

// Grad mode is per thread, like PyTorch's.
bool grad_enabled();
void set_grad_enabled(bool enabled);

class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when grad mode is on and any defined input requires grad.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);

// Attaches `node` (with its differentiable inputs) as the grad_fn of `output`.
void record_node(Tensor& output, std::shared_ptr<Node> node, std::vector<Tensor> inputs);

// Gradient-ready hooks: while a guard lives, backward() on this thread calls its function once
// per leaf that requires grad and is reached by the graph, as soon as that leaf's gradient is
// final for the pass (every node that could still send it a contribution has run or been
// skipped), with the leaf itself; leaf.grad() then holds the gradient (undefined if nothing
// reached it, unless it is bound: train/flat_parameters.h). Calls come in the order gradients
// become final, on the backward thread, before backward() returns; CUDA work producing the
// gradient is queued on the device's stream, not finished. A data-parallel reducer uses this to
// start all-reducing a bucket while backward still runs. Guards nest; all live hooks are called,
// oldest first. The hook must not run backward() itself.
using GradReadyHook = std::function<void(const Tensor& leaf)>;

class GradReadyHookGuard {
 public:
  explicit GradReadyHookGuard(GradReadyHook hook);
  ~GradReadyHookGuard();
  GradReadyHookGuard(const GradReadyHookGuard&) = delete;
  GradReadyHookGuard& operator=(const GradReadyHookGuard&) = delete;

 private:
  GradReadyHook hook_;
};

// The engine behind Tensor::backward().
void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph);

}  // namespace dp
