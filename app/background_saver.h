// Checkpoint saves that do not stall training: the trainer takes a snapshot (a host copy of the
// state, the only part that waits for the device) and this writes and commits it
// (app/checkpoint_commit.h) on a thread of its own, one save in flight at a time.
#pragma once
#include <future>
#include <string>

#include "app/checkpoint_commit.h"
#include "io/checkpoint_file.h"

namespace dp::app {

class BackgroundSaver {
 public:
  explicit BackgroundSaver(std::string folder) : folder_(std::move(folder)) {}
  // Waits for the save in flight; an error it had is printed (a destructor cannot throw it).
  ~BackgroundSaver();
  BackgroundSaver(const BackgroundSaver&) = delete;
  BackgroundSaver& operator=(const BackgroundSaver&) = delete;

  // Waits for the previous save (rethrowing its error), then saves `file` as `plan` in the
  // background. `what` describes the save in errors ("the checkpoint of global step 1200").
  void submit(io::TensorFile file, CommitPlan plan, std::string what);
  // Waits until nothing is in flight; rethrows the error of the last save, if it failed.
  void wait();
  bool in_flight() const { return pending_.valid(); }

  CommitProbe probe;  // test seam (app/checkpoint_commit.h)

 private:
  std::string folder_;
  std::future<void> pending_;
};

}  // namespace dp::app
