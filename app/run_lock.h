// One writer per run folder: the writing process (rank 0) holds an advisory lock (flock) on
// RUN/.dp-train.lock for the whole run. A second dp-train on the same folder, fresh or resumed, is
// refused with a message naming the holder (host, process id, start time, command line), which
// the holder records in the file. The kernel releases the lock when its holder dies however it
// dies, so the lock of a killed run is simply taken over; nothing needs cleaning up. On NFS the
// lock is a POSIX lock through the NFS lock manager (it holds across machines); a file system
// without locks (Lustre mounted without -o flock) gets a one-line warning and no lock.
#pragma once
#include <string>

namespace dp::app {

inline constexpr const char* kRunLockFile = ".dp-train.lock";

class RunLock {
 public:
  // Creates `folder` when missing and takes its lock; throws dp::Error naming the holder when
  // another process has it.
  explicit RunLock(const std::string& folder);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  // The folder was renamed (--overwrite moves an old run aside, lock file included): lock `folder`
  // instead, then let the old one go.
  void move_to(const std::string& folder);

  const std::string& folder() const { return folder_; }
  bool held() const { return fd_ >= 0; }  // false where the file system has no locks

 private:
  std::string folder_;
  int fd_ = -1;
};

// What the lock file of `folder` says about its holder ("" when it has none), for messages.
std::string describe_lock_holder(const std::string& folder);

}  // namespace dp::app
