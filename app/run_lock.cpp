#include "app/run_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "app/run_folder.h"
#include "engine/error.h"

namespace dp::app {

namespace fs = std::filesystem;

namespace {

std::string lock_path(const std::string& folder) { return (fs::path(folder) / kRunLockFile).string(); }

std::string host_name() {
  std::array<char, 256> name{};
  return ::gethostname(name.data(), name.size() - 1) == 0 ? std::string(name.data()) : "unknown host";
}

std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string args, arg;
  while (std::getline(in, arg, '\0')) args += (args.empty() ? "" : " ") + arg;
  return args;
}

// Opens and locks `folder`'s lock file: the descriptor, -1 where the file system has no locks.
int lock_folder(const std::string& folder) {
  std::error_code made;
  fs::create_directories(folder, made);
  const std::string path = lock_path(folder);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  DP_CHECK(fd >= 0, fmt::format("cannot open the run folder's lock file {}: {}", path, std::strerror(errno)),
           "set run.output to a writable folder");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      const std::string holder = describe_lock_holder(folder);
      DP_THROW(fmt::format("run.output = \"{}\" is in use by another dp-train{}", folder,
                           holder.empty() ? " (it has not recorded itself yet)" : ": " + holder),
               "one run writes a folder at a time: wait for that run to end, stop it (kill that process on "
               "that host), or choose another run.output");
    }
    std::fprintf(stderr,
                 "dp-train: warning: the file system of %s has no locks (flock: %s): nothing keeps a second "
                 "dp-train out of this folder\n",
                 folder.c_str(), std::strerror(err));
    return -1;
  }
  // The holder's record, for the message of whoever is refused. A dead holder's record is
  // replaced here: its lock went with it.
  const std::string record = fmt::format("pid {} on host {}, started {}\ncommand: {}\n", ::getpid(), host_name(),
                                         utc_now("%Y-%m-%d %H:%M:%S UTC"), command_line());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, record.data(), record.size(), 0) != static_cast<ssize_t>(record.size()))
    std::fprintf(stderr, "dp-train: warning: cannot record this process in %s: %s\n", lock_path(folder).c_str(),
                 std::strerror(errno));
  return fd;
}

}  // namespace

std::string describe_lock_holder(const std::string& folder) {
  std::ifstream in(lock_path(folder));
  std::string first, command;
  std::getline(in, first);
  std::getline(in, command);
  if (first.empty()) return "";
  return command.empty() ? first : first + " (" + command + ")";
}

RunLock::RunLock(const std::string& folder) : folder_(folder), fd_(lock_folder(folder)) {}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays (removing it would race a new holder)
}

void RunLock::move_to(const std::string& folder) {
  const int fd = lock_folder(folder);
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  folder_ = folder;
}

}  // namespace dp::app
