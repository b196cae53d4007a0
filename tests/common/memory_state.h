// An in-memory StateWriter/StateReader (engine/state_io.h) for the owners' round-trip tests:
// what an owner saves, read back by the same owner, without a file.
#pragma once
#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include "engine/error.h"
#include "engine/state_io.h"

namespace dp::fixture {

class MemoryState : public StateWriter, public StateReader {
 public:
  void tensor(const std::string& name, const Tensor& value) override { tensors[name] = value.clone(); }
  void integer(const std::string& name, int64_t value) override { ints[name] = value; }
  void real(const std::string& name, double value) override { reals[name] = value; }
  void text(const std::string& name, const std::string& value) override { texts[name] = value; }

  const Tensor* take(const std::string& name) override {
    auto it = tensors.find(name);
    if (it == tensors.end()) return nullptr;
    taken.insert(name);
    return &it->second;
  }
  bool contains(const std::string& name) const override { return tensors.count(name) != 0; }
  std::optional<int64_t> integer(const std::string& name) const override { return get(ints, name); }
  std::optional<double> real(const std::string& name) const override { return get(reals, name); }
  std::optional<std::string> text(const std::string& name) const override { return get(texts, name); }
  [[noreturn]] void invalid(const std::string& what) const override { DP_THROW("memory: " + what, "test"); }

  // Names saved but not taken back.
  std::set<std::string> untaken() const {
    std::set<std::string> out;
    for (const auto& [name, t] : tensors)
      if (!taken.count(name)) out.insert(name);
    return out;
  }

  std::map<std::string, Tensor> tensors;
  std::map<std::string, int64_t> ints;
  std::map<std::string, double> reals;
  std::map<std::string, std::string> texts;
  std::set<std::string> taken;

 private:
  template <class T>
  static std::optional<T> get(const std::map<std::string, T>& m, const std::string& key) {
    auto it = m.find(key);
    return it == m.end() ? std::nullopt : std::optional<T>(it->second);
  }
};

}  // namespace dp::fixture
