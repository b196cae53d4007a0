#include "layers/state_dict.h"

#include <fmt/format.h>

namespace dp::layers {

void StateDict::insert(const std::string& name, const Tensor& tensor) {
  DP_CHECK(!contains(name), fmt::format("state dict: duplicate entry '{}'", name),
           "each parameter or buffer name must be unique");
  index_.emplace(name, entries_.size());
  entries_.emplace_back(name, tensor);
}

void StateDict::set(const std::string& name, const Tensor& tensor) {
  auto it = index_.find(name);
  if (it == index_.end()) {
    insert(name, tensor);
  } else {
    entries_[it->second].second = tensor;
  }
}

const Tensor* StateDict::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

const Tensor& StateDict::at(const std::string& name) const {
  const Tensor* t = find(name);
  if (t == nullptr) {
    // Suggest entries that share the last component (e.g. "weight") to help spot prefix errors.
    std::string leaf = name.substr(name.rfind('.') == std::string::npos ? 0 : name.rfind('.') + 1);
    std::string close;
    int shown = 0;
    for (const auto& [n, _] : entries_) {
      if (shown < 5 && n.size() >= leaf.size() && n.compare(n.size() - leaf.size(), leaf.size(), leaf) == 0) {
        close += (shown++ ? ", " : "") + n;
      }
    }
    DP_THROW(fmt::format("state dict has no entry '{}' ({} entries)", name, entries_.size()),
             close.empty() ? "check the name against the module's state_dict()"
                           : "entries with a similar ending: " + close);
  }
  return *t;
}

StateDict StateDict::clone() const {
  StateDict out;
  for (const auto& [name, t] : entries_) out.insert(name, t.clone());
  return out;
}

void StateDict::save_state(StateWriter& out, const std::string& prefix) const {
  for (const auto& [name, t] : entries_) out.tensor(prefix + name, t);
}

}  // namespace dp::layers
