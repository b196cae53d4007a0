// Host-side state of a training step, and the one way a replayed step keeps it right.
//
// A CUDA graph replays a captured step's kernels but none of its host code (engine/cuda/graph.h).
// Whatever that host code changes must still change after a replay: a counter kept on the host
// (BatchNorm's batch count, an optimiser's step count), the version of every tensor a kernel
// writes in place (autograd's in-place checks and autocast's weight cache read it). And whatever
// the host code passes to kernels by value must not change from step to step, or the replays
// would reuse the captured value (dropout's mask stream, an optimiser's first-step flag).
//
// So every component with such state declares it, and writes no replay code: the step snapshots
// the declared state around the capture (which runs the host code once), then after each replay
// advances every counter and version by what the captured step changed (ReplayedHostState). A
// step that changes a declared kernel argument is not captured (it runs eagerly).
//
// A component that keeps host state without declaring it would make replays diverge silently:
// tests/train/test_step_replay.cpp audits every net and optimiser on the CPU by emulating a
// replay (the eager kernels' results, then the mechanism below) and comparing with eager steps.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/tensor.h"

namespace dp {

class HasHostState;

class HostState {
 public:
  // A counter the step advances on the host. `advanced` (optional) runs after a replay moved
  // it, e.g. to mark a mirror of it stale.
  template <class Int>
  void counter(const std::string& name, Int* value, std::function<void()> advanced = {}) {
    static_assert(std::is_integral_v<Int>, "a host counter is an integer");
    add({name, Kind::Counter, [value] { return static_cast<int64_t>(*value); },
         [value, advanced](int64_t delta) {
           *value = static_cast<Int>(static_cast<int64_t>(*value) + delta);
           if (advanced) advanced();
         },
         Tensor()});
  }
  // A value the step's host code passes to kernels by value (launch arguments are baked into a
  // captured graph): a step that changes it cannot be replayed.
  void kernel_argument(const std::string& name, std::function<int64_t()> value);
  // The version of t's storage: t is written in place by the step's kernels. One entry per
  // storage (views of one buffer share its version), holding the largest view declared; an
  // undefined t declares nothing.
  void version(const std::string& name, const Tensor& t);
  // The parts of a composite owner: `owner` declares its state under "prefix." names.
  void part(const std::string& prefix, HasHostState& owner);

  using Snapshot = std::vector<int64_t>;
  Snapshot snapshot() const;
  // Names of the entries that differ between two snapshots (all kinds, or kernel arguments).
  std::vector<std::string> changed(const Snapshot& before, const Snapshot& after) const;
  std::vector<std::string> changed_kernel_arguments(const Snapshot& before, const Snapshot& after) const;
  // Moves every counter and version on by (after − before): what one replayed step must redo.
  void advance(const Snapshot& before, const Snapshot& after);

  // The tensors declared through version(), with their names: what the step's kernels write.
  std::vector<std::pair<std::string, Tensor>> written_tensors() const;
  size_t size() const { return entries_.size(); }

 private:
  enum class Kind { Counter, KernelArgument, Version };
  struct Entry {
    std::string name;
    Kind kind;
    std::function<int64_t()> read;         // Counter, KernelArgument
    std::function<void(int64_t)> advance;  // Counter
    Tensor tensor;                         // Version
  };
  void add(Entry e);
  std::string qualified(const std::string& name) const { return prefix_ + name; }

  std::vector<Entry> entries_;
  std::string prefix_;
};

// Every component a training step changes on the host: modules, optimisers, data parameters,
// a data-parallel sync, the step itself.
class HasHostState {
 public:
  virtual ~HasHostState() = default;
  virtual void declare_host_state(HostState& state) = 0;
};

// The replay bookkeeping of one captured step: declare, measure the capture, redo after replays.
class ReplayedHostState {
 public:
  // Declares `step`'s state now (after its warm-up, so that every buffer exists).
  explicit ReplayedHostState(HasHostState& step);
  // Around the host code that runs once for the captured step (the capture itself). end()
  // returns the kernel arguments that step changed: non-empty means "do not replay".
  void begin();
  std::vector<std::string> end();
  // After each replay: the host side of one more step.
  void after_replay();
  const HostState& state() const { return state_; }

 private:
  HostState state_;
  HostState::Snapshot before_, after_;
};

}  // namespace dp
