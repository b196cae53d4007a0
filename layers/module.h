// Module: a node of a network with named parameters, buffers and child modules.
//
// Names and order follow PyTorch's state_dict: a module lists its own parameters (in
// registration order), then its own buffers, then each child's entries under "child." in
// registration order. That makes `layer1.0.conv1.weight` mean the same thing here and in a
// PyTorch checkpoint, and lets a state dictionary cross over one for one.
//
// Modules are created through std::make_shared and never copied or moved: the registries hold
// pointers to the Tensor members of the layers, so to(device) and load_state_dict update the
// members that forward() reads.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/host_state.h"
#include "engine/state_io.h"
#include "engine/tensor.h"
#include "layers/state_dict.h"

namespace dp::layers {

// Where a layer draws its initial values: one Philox stream per parameter, keyed by the
// parameter's full dotted name, so a value depends only on (seed, name) and not on the order
// in which layers are built or initialised.
class InitContext {
 public:
  InitContext(uint64_t seed, std::string prefix) : seed_(seed), prefix_(std::move(prefix)) {}
  Rng rng_for(std::string_view local_name) const;
  uint64_t seed() const { return seed_; }
  const std::string& prefix() const { return prefix_; }

 private:
  uint64_t seed_;
  std::string prefix_;
};

class Module : public HasHostState {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // PyTorch's default initialisation for this module's own parameters (not its children's).
  virtual void reset_parameters(const InitContext&) {}
  // Initialises this module and all descendants from `seed` (reset_parameters on each).
  void init_parameters(uint64_t seed);

  // ---- mode ----
  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // ---- introspection (dotted names, state_dict order) ----
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<Tensor> parameters() const;
  // This module ("" as its name) and every descendant, depth first in registration order.
  // (Raw pointers: usable from a constructor, before a shared_ptr owns the module.)
  std::vector<std::pair<std::string, Module*>> named_modules();
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }
  std::shared_ptr<Module> child(const std::string& name) const;  // throws when absent
  const std::string& type_name() const { return type_name_; }
  int64_t num_parameters() const;  // elements of all parameters (buffers excluded)

  // ---- state ----
  // Parameters and buffers in PyTorch's order. The tensors share storage with the module
  // (detached, like PyTorch's state_dict()); clone them to snapshot.
  StateDict state_dict() const;
  // Copies every entry into the module's tensors. Checks names (missing/unexpected, when
  // strict), shapes and dtypes, reporting "source shape vs target shape" per mismatch.
  void load_state_dict(const StateDict& state, bool strict = true);
  // The module's part of a checkpoint (engine/state_io.h): every state_dict() entry as the
  // dataset prefix + name. read_state takes exactly this module's entries from `in`, each checked
  // for presence, shape and dtype against this module (`what` names it in messages, e.g. "a
  // resnet18 with 1000 classes"), without changing the module; load_state also loads them.
  void save_state(StateWriter& out, const std::string& prefix) const;
  StateDict read_state(StateReader& in, const std::string& prefix, const std::string& what) const;
  void load_state(StateReader& in, const std::string& prefix, const std::string& what);

  // ---- gradients and devices ----
  void zero_grad();      // drops every parameter's gradient
  void to(Device device);  // moves every parameter and buffer (recursive)
  Device device() const;   // the device of the first parameter or buffer (CPU when none)

  // ---- host-side state (engine/host_state.h: what a CUDA graph replay must redo) ----
  // Declares the version of every parameter and buffer (kernels write them in place) and each
  // module's own host state (declare_own_host_state), under dotted names (recursive).
  void declare_host_state(HostState& state) final;

  // One-line-per-module summary with parameter counts, for logs and dp-inspect.
  std::string describe() const;

 protected:
  // Registers `*slot` (a member of the derived class) under `name`. Parameters become leaves
  // that require grad. An undefined slot (e.g. a disabled bias) is not registered.
  void register_parameter(const std::string& name, Tensor* slot);
  void register_buffer(const std::string& name, Tensor* slot);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }
  // Hooks for state kept outside tensors (e.g. a host-side counter mirrored into a buffer).
  virtual void before_state_read() const {}
  virtual void after_state_write() {}
  virtual void on_train_mode(bool) {}
  // State kept on the host that forward() changes or passes to kernels by value (a counter, a
  // host-drawn random stream): a layer with any declares it here (HostState::counter,
  // kernel_argument), or replayed training steps diverge from eager ones without a word.
  virtual void declare_own_host_state(HostState&) {}

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void collect(const std::string& prefix, bool params, bool buffers,
               std::vector<std::pair<std::string, Tensor*>>& out) const;
  void describe_into(const std::string& name, int depth, std::string& out) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor*>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

using ModulePtr = std::shared_ptr<Module>;

// 64-bit FNV-1a, used to turn parameter names into RNG streams.
uint64_t fnv1a64(std::string_view text);

}  // namespace dp::layers
