#include "dist/watchdog.h"

#include <cstdio>
#include <cstdlib>

#include "dist/process_group.h"

namespace dp::dist {

CollectiveWatchdog::CollectiveWatchdog(int rank, double timeout_s)
    : rank_(rank), timeout_(timeout_s), thread_([this] { loop(); }) {}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

CollectiveWatchdog::Guard::Guard(CollectiveWatchdog& w, const char* what) : w_(w) {
  std::lock_guard<std::mutex> lock(w_.mutex_);
  w_.current_ = what;
  w_.since_ = std::chrono::steady_clock::now();
  w_.cv_.notify_all();
}

CollectiveWatchdog::Guard::~Guard() {
  std::lock_guard<std::mutex> lock(w_.mutex_);
  w_.current_ = nullptr;
}

void CollectiveWatchdog::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    if (current_ == nullptr) {
      cv_.wait(lock, [&] { return stopping_ || current_ != nullptr; });
      continue;
    }
    const auto deadline = since_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout_);
    const char* watched = current_;
    const auto started = since_;
    cv_.wait_until(lock, deadline, [&] { return stopping_ || current_ != watched || since_ != started; });
    if (stopping_ || current_ != watched || since_ != started) continue;
    const std::string what = watched;
    lock.unlock();
    abort_job_after_error("collective '" + what + "' did not complete within run.dist_timeout_s = " +
                              std::to_string(timeout_.count()) +
                              " s: another rank has probably failed, stopped or hangs (see its output)",
                          3);
    std::fprintf(stderr, "dp-train rank %d: collective '%s' timed out\n", rank_, what.c_str());
    std::fflush(stderr);
    std::_Exit(3);  // a single process has no peers to wait for; kept for completeness
  }
}

}  // namespace dp::dist
