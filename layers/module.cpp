#include "layers/module.h"

#include <fmt/format.h>

#include <unordered_set>

#include "engine/autograd.h"

namespace dp::layers {

uint64_t fnv1a64(std::string_view text) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

Rng InitContext::rng_for(std::string_view local_name) const {
  std::string full = prefix_.empty() ? std::string(local_name) : prefix_ + "." + std::string(local_name);
  return Rng(seed_, fnv1a64(full));
}

void Module::register_parameter(const std::string& name, Tensor* slot) {
  if (!slot->defined()) return;
  DP_CHECK(name.find('.') == std::string::npos, fmt::format("parameter name '{}' contains '.'", name),
           "dots separate module names; register the parameter on the child module");
  slot->set_requires_grad(true);
  params_.emplace_back(name, slot);
}

void Module::register_buffer(const std::string& name, Tensor* slot) {
  if (!slot->defined()) return;
  buffers_.emplace_back(name, slot);
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  DP_CHECK(module != nullptr, fmt::format("register_module('{}') with a null module", name), "");
  for (const auto& [n, _] : children_) {
    DP_CHECK(n != name, fmt::format("duplicate child module '{}' in {}", name, type_name_), "");
  }
  children_.emplace_back(name, std::move(module));
}

std::shared_ptr<Module> Module::child(const std::string& name) const {
  for (const auto& [n, m] : children_) {
    if (n == name) return m;
  }
  DP_THROW(fmt::format("{} has no child module '{}'", type_name_, name),
           "list the children with describe()");
}

void Module::init_parameters(uint64_t seed) {
  NoGradGuard no_grad;
  for (auto& [name, m] : named_modules()) m->reset_parameters(InitContext(seed, name));
}

void Module::train(bool on) {
  training_ = on;
  on_train_mode(on);
  for (auto& [_, m] : children_) m->train(on);
}

void Module::declare_host_state(HostState& state) {
  for (const auto& [name, t] : params_) state.version(name, *t);
  for (const auto& [name, t] : buffers_) state.version(name, *t);
  declare_own_host_state(state);
  for (auto& [name, m] : children_) state.part(name, *m);
}

void Module::collect(const std::string& prefix, bool params, bool buffers,
                     std::vector<std::pair<std::string, Tensor*>>& out) const {
  if (params) {
    for (const auto& [n, t] : params_) out.emplace_back(prefix + n, t);
  }
  if (buffers) {
    before_state_read();
    for (const auto& [n, t] : buffers_) out.emplace_back(prefix + n, t);
  }
  for (const auto& [n, m] : children_) m->collect(prefix + n + ".", params, buffers, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", true, false, slots);
  std::vector<std::pair<std::string, Tensor>> out;
  out.reserve(slots.size());
  for (auto& [n, t] : slots) out.emplace_back(n, *t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", false, true, slots);
  std::vector<std::pair<std::string, Tensor>> out;
  out.reserve(slots.size());
  for (auto& [n, t] : slots) out.emplace_back(n, *t);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  struct Walk {
    static void run(const std::string& name, Module* m, std::vector<std::pair<std::string, Module*>>& out) {
      out.emplace_back(name, m);
      for (const auto& [n, c] : m->children_) run(name.empty() ? n : name + "." + n, c.get(), out);
    }
  };
  Walk::run("", this, out);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t total = 0;
  for (const auto& [_, t] : named_parameters()) total += t.numel();
  return total;
}

// Separate pass per kind, like PyTorch: each module's parameters, then its buffers, then its
// children. collect() with both flags yields exactly that order.
StateDict Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", true, true, slots);
  StateDict out;
  for (auto& [n, t] : slots) out.insert(n, t->detach());
  return out;
}

void Module::save_state(StateWriter& out, const std::string& prefix) const { state_dict().save_state(out, prefix); }

StateDict Module::read_state(StateReader& in, const std::string& prefix, const std::string& what) const {
  StateDict out;
  for (const auto& [name, t] : state_dict()) out.insert(name, in.require(prefix + name, t.dtype(), t.shape(), what));
  return out;
}

void Module::load_state(StateReader& in, const std::string& prefix, const std::string& what) {
  load_state_dict(read_state(in, prefix, what), /*strict=*/true);
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", true, true, slots);
  std::vector<std::string> problems;
  std::unordered_set<std::string> known;
  for (auto& [name, slot] : slots) {
    known.insert(name);
    const Tensor* src = state.find(name);
    if (src == nullptr) {
      if (strict) problems.push_back(fmt::format("missing '{}' (target shape {})", name, shape_str(slot->shape())));
      continue;
    }
    if (src->shape() != slot->shape() || src->dtype() != slot->dtype()) {
      problems.push_back(fmt::format("'{}': source {} {} vs target {} {}", name, dtype_name(src->dtype()),
                                     shape_str(src->shape()), dtype_name(slot->dtype()),
                                     shape_str(slot->shape())));
    }
  }
  if (strict) {
    for (const auto& [name, _] : state) {
      if (!known.count(name)) problems.push_back(fmt::format("unexpected '{}'", name));
    }
  }
  if (!problems.empty()) {
    std::string msg = fmt::format("load_state_dict into {}: {} problem(s):", type_name_, problems.size());
    for (size_t i = 0; i < problems.size() && i < 20; ++i) msg += "\n  " + problems[i];
    if (problems.size() > 20) msg += fmt::format("\n  ... and {} more", problems.size() - 20);
    DP_THROW(msg, "was the checkpoint written for another architecture, width or number of classes?");
  }
  // Nothing is written until every entry has been checked, so a bad file leaves the module intact.
  NoGradGuard no_grad;
  for (auto& [name, slot] : slots) {
    if (const Tensor* src = state.find(name)) slot->copy_from(*src);
  }
  struct Walk {
    static void run(Module& m) {
      m.after_state_write();
      for (auto& [_, c] : m.children_) run(*c);
    }
  };
  Walk::run(*this);
}

void Module::zero_grad() {
  for (auto& [_, t] : params_) t->zero_grad();
  for (auto& [_, m] : children_) m->zero_grad();
}

void Module::to(Device device) {
  for (auto& [_, t] : params_) {
    if (t->device() == device) continue;
    Tensor moved = t->to(device);
    moved.set_requires_grad(true);
    *t = moved;
  }
  before_state_read();
  for (auto& [_, t] : buffers_) *t = t->to(device);
  for (auto& [_, m] : children_) m->to(device);
}

Device Module::device() const {
  if (!params_.empty()) return params_.front().second->device();
  if (!buffers_.empty()) return buffers_.front().second->device();
  for (const auto& [_, m] : children_) {
    if (!m->params_.empty() || !m->buffers_.empty() || !m->children_.empty()) return m->device();
  }
  return Device::cpu();
}

void Module::describe_into(const std::string& name, int depth, std::string& out) const {
  int64_t own = 0;
  for (const auto& [_, t] : params_) own += t->numel();
  out += fmt::format("{:{}}{}{}{} ({} params)\n", "", 2 * depth, name, name.empty() ? "" : ": ", type_name_,
                     depth == 0 ? num_parameters() : own);
  for (const auto& [n, m] : children_) m->describe_into(n, depth + 1, out);
}

std::string Module::describe() const {
  std::string out;
  describe_into("", 0, out);
  return out;
}

}  // namespace dp::layers
