// HostState (engine/host_state.h): declared counters, tensor versions and kernel arguments, what
// a measured step changed, and the advance a replayed step applies.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/host_state.h"
#include "engine/tensor.h"

namespace dp {
namespace {

// A component with one of each kind of host state.
struct Part : HasHostState {
  int64_t count = 0;
  uint64_t stream = 7;
  int advanced_calls = 0;
  Tensor written = Tensor::from_vector(std::vector<float>(4, 0.0f), {4});
  void declare_host_state(HostState& state) override {
    state.counter("count", &count, [this] { ++advanced_calls; });
    state.kernel_argument("stream", [this] { return static_cast<int64_t>(stream); });
    state.version("written_part", written.narrow0(1, 2));
    state.version("written", written);  // the same storage: one entry, holding the whole of it
  }
  void step(bool draw) {
    count += 2;
    written.bump_version();
    if (draw) ++stream;
  }
};

struct Whole : HasHostState {
  Part a, b;
  void declare_host_state(HostState& state) override {
    state.part("a", a);
    state.part("b", b);
  }
};

TEST(HostState, PartsAreNamedAndViewsShareOneVersionEntry) {
  Whole w;
  HostState state;
  w.declare_host_state(state);
  EXPECT_EQ(state.size(), 6u);
  const auto written = state.written_tensors();
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(written[0].first, "a.written");
  EXPECT_EQ(written[1].first, "b.written");
}

TEST(HostState, ReplayAdvancesCountersAndVersionsByTheCapturedStep) {
  Whole w;
  ReplayedHostState replay(w);
  replay.begin();
  w.a.step(false);  // the captured step's host code
  w.b.step(false);
  EXPECT_TRUE(replay.end().empty());
  for (int i = 0; i < 3; ++i) replay.after_replay();
  EXPECT_EQ(w.a.count, 8);
  EXPECT_EQ(w.b.count, 8);
  EXPECT_EQ(w.a.advanced_calls, 3);
  EXPECT_EQ(w.a.written.version(), 4u);
  EXPECT_EQ(w.a.stream, 7u) << "kernel arguments are never advanced";
}

TEST(HostState, AChangedKernelArgumentIsNamed) {
  Whole w;
  ReplayedHostState replay(w);
  replay.begin();
  w.a.step(false);
  w.b.step(true);
  EXPECT_EQ(replay.end(), std::vector<std::string>{"b.stream"});
  const HostState& state = replay.state();
  HostState::Snapshot now = state.snapshot();
  w.a.step(false);
  EXPECT_EQ(state.changed(now, state.snapshot()), (std::vector<std::string>{"a.count", "a.written"}));
}

TEST(HostState, ReplayBeforeAMeasuredCaptureIsRefused) {
  Whole w;
  ReplayedHostState replay(w);
  EXPECT_THROW(replay.after_replay(), Error);
}

}  // namespace
}  // namespace dp
