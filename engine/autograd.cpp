#include "engine/autograd.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "engine/primitives.h"

namespace dp {

namespace {
thread_local bool t_grad_enabled = true;

// Gradients are kept in the memory format of the tensor they belong to, so that optimisers
// (elementwise over parameter, gradient and momentum) and the ops' backward rules never see
// two layouts. Ops already return gradients that way; this catches a user-given seed.
Tensor in_format_of(const Tensor& g, const Tensor& t) {
  if (g.memory_format() == t.memory_format()) return g;
  return engine_primitives("convert").convert(g, g.dtype(), t.memory_format());
}

void accumulate(Tensor& slot, const Tensor& g) {
  if (!slot.defined()) {
    slot = g;
  } else {
    slot = engine_primitives("add").add(slot, g);
  }
}

// A leaf's gradient: in place into a bound slot (a flat gradient buffer's view), else as above.
void accumulate_leaf(Tensor& leaf, const Tensor& g) {
  if (leaf.grad_is_bound()) {
    engine_primitives("accumulate").accumulate(leaf.mutable_grad(), g);
  } else {
    accumulate(leaf.mutable_grad(), g);
  }
}

thread_local std::vector<const GradReadyHook*> t_grad_ready_hooks;

bool is_grad_leaf(const Tensor& t) { return t.defined() && t.requires_grad() && !t.grad_fn(); }

void notify_grad_ready(const Tensor& leaf) {
  // A copy: a hook may add or remove guards.
  const std::vector<const GradReadyHook*> hooks = t_grad_ready_hooks;
  for (const GradReadyHook* h : hooks) (*h)(leaf);
}
}  // namespace

GradReadyHookGuard::GradReadyHookGuard(GradReadyHook hook) : hook_(std::move(hook)) {
  DP_CHECK(static_cast<bool>(hook_), "GradReadyHookGuard: empty hook", "pass a callable");
  t_grad_ready_hooks.push_back(&hook_);
}

GradReadyHookGuard::~GradReadyHookGuard() {
  auto& hooks = t_grad_ready_hooks;
  hooks.erase(std::remove(hooks.begin(), hooks.end(), &hook_), hooks.end());
}

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

const Tensor& SavedTensor::get(const char* op_name) const {
  DP_CHECK(!tensor_.defined() || tensor_.version() == version_,
           fmt::format("a tensor saved by {} for the backward pass was modified in place "
                       "(version {} now, {} when saved)",
                       op_name, tensor_.version(), version_),
           "use the out-of-place form of the op, or clone() the tensor before modifying it");
  return tensor_;
}

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor* t : inputs)
    if (t != nullptr && t->defined() && t->requires_grad()) return true;
  return false;
}

void record_node(Tensor& output, std::shared_ptr<Node> node, std::vector<Tensor> inputs) {
  node->inputs = std::move(inputs);
  output.set_grad_fn(std::move(node));
}

void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph) {
  DP_CHECK(root.requires_grad(), "backward() on a tensor that does not require grad",
           "call set_requires_grad(true) on the parameters, and do not run the forward pass "
           "inside a NoGradGuard");
  Tensor seed = gradient;
  if (!seed.defined()) {
    DP_CHECK(root.numel() == 1,
             "backward() without a gradient needs a one-element tensor, got " + root.str(),
             "reduce the output to a scalar (e.g. a mean loss) or pass the gradient explicitly");
    seed = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  seed = in_format_of(seed, root);
  NoGradGuard no_grad;  // the backward pass itself is not recorded

  if (root.is_leaf()) {
    Tensor leaf = root;
    accumulate_leaf(leaf, seed);
    if (!t_grad_ready_hooks.empty()) notify_grad_ready(leaf);
    return;
  }

  // Topological order: iterative depth-first post-order; reversed, every node comes before
  // the nodes that produced its inputs.
  std::vector<Node*> order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<Node*, size_t>> stack;
  Node* root_node = root.grad_fn().get();
  stack.emplace_back(root_node, 0);
  visited.insert(root_node);
  while (!stack.empty()) {
    auto& [node, next_input] = stack.back();
    if (node->released)
      DP_THROW(fmt::format("backward through {} a second time: its saved tensors were freed",
                           node->name()),
               "pass retain_graph = true to the first backward() call");
    if (next_input < node->inputs.size()) {
      const Tensor& in = node->inputs[next_input++];
      Node* child = in.defined() ? in.grad_fn().get() : nullptr;
      if (child != nullptr && visited.insert(child).second) stack.emplace_back(child, 0);
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  // With gradient-ready hooks: the number of edges into each leaf from nodes not yet visited.
  // Every node of `order` is visited once (run, or skipped when no gradient reached it), so a
  // leaf's count reaches zero exactly when nothing more can be added to its gradient.
  const bool hooks = !t_grad_ready_hooks.empty();
  std::unordered_map<const TensorImpl*, int64_t> edges_left;
  if (hooks)
    for (Node* node : order)
      for (const Tensor& in : node->inputs)
        if (is_grad_leaf(in)) ++edges_left[in.impl()];
  auto visited_edges = [&](Node* node) {
    if (!hooks) return;
    for (const Tensor& in : node->inputs)
      if (is_grad_leaf(in) && --edges_left[in.impl()] == 0) notify_grad_ready(in);
  };

  std::unordered_map<Node*, Tensor> pending;
  pending[root_node] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = *it;
    auto found = pending.find(node);
    if (found == pending.end()) {
      visited_edges(node);
      continue;
    }
    Tensor grad_out = std::move(found->second);
    pending.erase(found);
    std::vector<Tensor> grads = node->backward(grad_out);
    DP_CHECK(grads.size() == node->inputs.size(),
             fmt::format("{}::backward returned {} gradients for {} inputs", node->name(),
                         grads.size(), node->inputs.size()),
             "this is a bug in the op's backward rule");
    for (size_t i = 0; i < grads.size(); ++i) {
      Tensor& in = node->inputs[i];
      if (!grads[i].defined() || !in.defined() || !in.requires_grad()) continue;
      DP_CHECK(grads[i].shape() == in.shape(),
               fmt::format("{}::backward produced a gradient of shape {} for an input of shape {}",
                           node->name(), shape_str(grads[i].shape()), shape_str(in.shape())),
               "this is a bug in the op's backward rule");
      const Tensor g = in_format_of(grads[i], in);
      if (in.grad_fn())
        accumulate(pending[in.grad_fn().get()], g);
      else
        accumulate_leaf(in, g);
    }
    visited_edges(node);
    if (!retain_graph) {
      node->release();
      node->released = true;
    }
  }
}

}  // namespace dp
