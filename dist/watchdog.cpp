#include "dist/watchdog.h"

#include <fmt/format.h>

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
    const auto timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout_);
    const char* watched = current_;
    const auto started = since_;
    auto moved_on = [&] { return stopping_ || current_ != watched || since_ != started; };
    // Half way, say whom this rank waits for: a launcher that notices a lost machine may end the
    // job before the timeout (mpirun over TCP cannot finish an abort towards a machine it lost),
    // and this line is then the one that names the rank.
    if (cv_.wait_until(lock, started + timeout / 2, moved_on)) continue;
    const ProcessGroup& group = process_group();
    std::fprintf(stderr, "dp-train rank %d of %d: collective '%s' has waited %.3g s for %s (run.dist_timeout_s = %.3g s "
                 "ends the job): it has failed, hangs or cannot be reached\n",
                 rank_, group.world_size, watched, timeout_.count() / 2, describe_peers(group, rank_).c_str(),
                 timeout_.count());
    std::fflush(stderr);
    if (cv_.wait_until(lock, started + timeout, moved_on)) continue;
    const std::string what = watched;
    lock.unlock();
    abort_job_after_error(fmt::format("collective '{}' did not complete within run.dist_timeout_s = {:g} s: {} did "
                                      "not join it: it has probably failed, stopped, hangs or cannot be reached (see "
                                      "its output)",
                                      what, timeout_.count(), describe_peers(group, rank_)),
                          3);
    std::fprintf(stderr, "dp-train rank %d: collective '%s' timed out\n", rank_, what.c_str());
    std::fflush(stderr);
    std::_Exit(3);  // a single process has no peers to wait for; kept for completeness
  }
}

}  // namespace dp::dist
