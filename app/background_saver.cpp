#include "app/background_saver.h"

#include <fmt/format.h>

#include <cstdio>

#include "engine/error.h"

namespace dp::app {

BackgroundSaver::~BackgroundSaver() {
  try {
    wait();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dp-train: error: %s\n", e.what());
  }
}

void BackgroundSaver::submit(io::TensorFile file, CommitPlan plan, std::string what) {
  wait();
  pending_ = std::async(std::launch::async, [this, file = std::move(file), plan = std::move(plan), what = std::move(what)] {
    try {
      commit_checkpoint(folder_, file, plan, probe);
    } catch (const Error& e) {
      DP_THROW(fmt::format("saving {} failed: {}", what, e.message()), e.hint());
    }
  });
}

void BackgroundSaver::wait() {
  if (!pending_.valid()) return;
  std::future<void> done = std::move(pending_);
  done.get();
}

}  // namespace dp::app
