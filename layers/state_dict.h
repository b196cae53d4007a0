// StateDict: an ordered name -> Tensor map (PyTorch's state_dict), for checkpoints and export.
#pragma once
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/rng.h"
#include "engine/state_io.h"
#include "engine/tensor.h"

namespace dp::layers {

class StateDict {
 public:
  // Appends an entry; throws when `name` is already present.
  void insert(const std::string& name, const Tensor& tensor);
  // Replaces an existing entry or appends a new one.
  void set(const std::string& name, const Tensor& tensor);
  const Tensor* find(const std::string& name) const;
  const Tensor& at(const std::string& name) const;  // throws with the list of close names
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const std::vector<std::pair<std::string, Tensor>>& entries() const { return entries_; }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  // Deep copy of every tensor (a snapshot that later training does not change).
  StateDict clone() const;
  // Every entry as the dataset prefix + name (a checkpoint part, engine/state_io.h); the
  // reading side is Module::read_state, which checks the entries against the module.
  void save_state(StateWriter& out, const std::string& prefix) const;

 private:
  std::vector<std::pair<std::string, Tensor>> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace dp::layers
