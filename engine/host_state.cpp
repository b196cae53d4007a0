#include "engine/host_state.h"

#include <fmt/format.h>

#include "engine/error.h"

namespace dp {

void HostState::add(Entry e) {
  e.name = qualified(e.name);
  entries_.push_back(std::move(e));
}

void HostState::kernel_argument(const std::string& name, std::function<int64_t()> value) {
  add({name, Kind::KernelArgument, std::move(value), {}, Tensor()});
}

void HostState::version(const std::string& name, const Tensor& t) {
  if (!t.defined()) return;
  for (Entry& e : entries_) {
    if (e.kind != Kind::Version || !e.tensor.shares_storage(t)) continue;
    // That storage is declared; the entry keeps the largest view of it (a flat buffer rather
    // than one parameter in it), so that written_tensors() covers what the kernels write.
    if (t.nbytes() > e.tensor.nbytes()) {
      e.name = qualified(name);
      e.tensor = t;
    }
    return;
  }
  add({name, Kind::Version, {}, {}, t});
}

void HostState::part(const std::string& prefix, HasHostState& owner) {
  const std::string saved = prefix_;
  prefix_ = saved + prefix + ".";
  owner.declare_host_state(*this);
  prefix_ = saved;
}

HostState::Snapshot HostState::snapshot() const {
  Snapshot s;
  s.reserve(entries_.size());
  for (const Entry& e : entries_)
    s.push_back(e.kind == Kind::Version ? static_cast<int64_t>(e.tensor.version()) : e.read());
  return s;
}

std::vector<std::string> HostState::changed(const Snapshot& before, const Snapshot& after) const {
  DP_CHECK(before.size() == entries_.size() && after.size() == entries_.size(),
           fmt::format("HostState: snapshots of {} and {} entries for {} declared", before.size(), after.size(),
                       entries_.size()),
           "compare snapshots of this HostState only");
  std::vector<std::string> names;
  for (size_t i = 0; i < entries_.size(); ++i)
    if (before[i] != after[i]) names.push_back(entries_[i].name);
  return names;
}

std::vector<std::string> HostState::changed_kernel_arguments(const Snapshot& before, const Snapshot& after) const {
  (void)changed(before, after);  // checks the sizes
  std::vector<std::string> names;
  for (size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].kind == Kind::KernelArgument && before[i] != after[i]) names.push_back(entries_[i].name);
  return names;
}

void HostState::advance(const Snapshot& before, const Snapshot& after) {
  (void)changed(before, after);  // checks the sizes
  for (size_t i = 0; i < entries_.size(); ++i) {
    const int64_t delta = after[i] - before[i];
    if (delta == 0) continue;
    Entry& e = entries_[i];
    if (e.kind == Kind::Counter) {
      e.advance(delta);
    } else if (e.kind == Kind::Version) {
      for (int64_t k = 0; k < delta; ++k) e.tensor.bump_version();
    }
  }
}

std::vector<std::pair<std::string, Tensor>> HostState::written_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Entry& e : entries_)
    if (e.kind == Kind::Version) out.emplace_back(e.name, e.tensor);
  return out;
}

ReplayedHostState::ReplayedHostState(HasHostState& step) { step.declare_host_state(state_); }

void ReplayedHostState::begin() { before_ = state_.snapshot(); }

std::vector<std::string> ReplayedHostState::end() {
  after_ = state_.snapshot();
  return state_.changed_kernel_arguments(before_, after_);
}

void ReplayedHostState::after_replay() {
  DP_CHECK(after_.size() == state_.size(), "ReplayedHostState: after_replay() before the capture was measured",
           "call begin() and end() around the capture first");
  state_.advance(before_, after_);
}

}  // namespace dp
