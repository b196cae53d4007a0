#include "app/stop_signals.h"

#include <unistd.h>

#include <atomic>
#include <cstring>

#include "engine/error.h"

namespace dp::app {

namespace {

std::atomic<int> g_received{0};
std::atomic<bool> g_announce{false};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free,
              "the signal handler needs lock-free atomics");

constexpr char kAnnouncement[] =
    "\ndp-train: stop signal received: finishing this step, then saving a checkpoint (a second signal ends dp-train "
    "at once)\n";

extern "C" void on_stop_signal(int signal) {
  int none = 0;
  if (g_received.compare_exchange_strong(none, signal)) {
    if (g_announce.load()) {
      const ssize_t ignored = ::write(STDERR_FILENO, kAnnouncement, sizeof(kAnnouncement) - 1);
      (void)ignored;
    }
    return;
  }
  // The second signal: what it would have done without us (for SIGTERM and SIGINT, end the process).
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

}  // namespace

StopSignals::StopSignals(const std::vector<int>& signals, bool announce) {
  g_received.store(0);
  g_announce.store(announce);
  for (int s : signals) {
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;  // reads, writes and waits elsewhere carry on; the flag is looked at later
    struct sigaction old {};
    DP_CHECK(::sigaction(s, &action, &old) == 0, std::string("cannot install a handler for signal ") + std::to_string(s),
             "check run.stop_signals");
    previous_.emplace_back(s, old);
  }
}

StopSignals::~StopSignals() {
  for (auto it = previous_.rbegin(); it != previous_.rend(); ++it) ::sigaction(it->first, &it->second, nullptr);
}

int StopSignals::received() { return g_received.load(); }

}  // namespace dp::app
