// A graceful stop: while a StopSignals object lives, the signals it was given (run.stop_signals)
// only record that a stop was asked for; the trainer looks at step boundaries, every rank agrees
// on the same step, writes a checkpoint and exits with kExitStopped. A second signal ends the
// process at once, with the signal's default action.
//
// The handler does only what is async-signal-safe: an atomic store, write(2) of a fixed line,
// and for the second signal signal(2) + raise(3).
#pragma once
#include <csignal>
#include <vector>

namespace dp::app {

// dp-train's exit code after a graceful stop (EX_TEMPFAIL: try again later): the checkpoint is
// written and `dp-train CONFIG --resume auto` continues. A requeue script tests for it.
inline constexpr int kExitStopped = 75;

class StopSignals {
 public:
  // Installs the handlers (the previous ones come back on destruction). `announce`: the first
  // signal writes one line to stderr (rank 0; the others stay quiet).
  StopSignals(const std::vector<int>& signals, bool announce);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The first stop signal received since installation (0: none).
  static int received();

 private:
  std::vector<std::pair<int, struct sigaction>> previous_;
};

}  // namespace dp::app
