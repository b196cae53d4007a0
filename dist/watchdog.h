// Ends a job whose collective waits longer than the timeout (run.dist_timeout_s): a peer that
// died, hangs in its data loader, threw without aborting or sits behind a cut network link would
// otherwise block this rank for ever. Half way the watchdog thread says which collective waits on
// which rank for whom (ranks and hosts); at the timeout it says so again and calls MPI_Abort.
#pragma once
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace dp::dist {

class CollectiveWatchdog {
 public:
  CollectiveWatchdog(int rank, double timeout_s);
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Marks one collective in progress for the lifetime of the guard.
  class Guard {
   public:
    Guard(CollectiveWatchdog& w, const char* what);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    CollectiveWatchdog& w_;
  };

 private:
  void loop();

  int rank_;
  std::chrono::duration<double> timeout_;
  std::mutex mutex_;
  std::condition_variable cv_;
  const char* current_ = nullptr;  // the collective in progress, null when none
  std::chrono::steady_clock::time_point since_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace dp::dist
