#include "io/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "engine/error.h"
#include "io/io_fault.h"

namespace dp::io {

namespace fs = std::filesystem;

namespace {

std::string folder_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

std::string human_bytes(double bytes) {
  const char* units[] = {"bytes", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000 && u < 4) bytes /= 1000, ++u;
  return u == 0 ? fmt::format("{:.0f} bytes", bytes) : fmt::format("{:.1f} {}", bytes, units[u]);
}

// The system call's result, or the injected fault's (io/io_fault.h), as an errno (0: success).
template <class Call>
int attempt(IoOp op, const std::string& target, Call call) {
  if (const int injected = injected_io_error(op, target)) return injected;
  return call() == 0 ? 0 : errno;
}

// What the user reads when writing `target` failed with `err` during `what`.
[[noreturn]] void fail(const std::string& target, const char* what, int err, size_t size) {
  const std::string folder = folder_of(target);
  const std::string kept = fs::exists(target) ? fmt::format("{} is unchanged", target)
                                              : fmt::format("nothing was written to {}", target);
  if (err == ENOSPC || err == EDQUOT) {
    struct statvfs st {};
    const std::string free_space =
        ::statvfs(folder.c_str(), &st) == 0
            ? human_bytes(static_cast<double>(st.f_bavail) * static_cast<double>(st.f_frsize)) + " free"
            : "free space unknown";
    DP_THROW(fmt::format("cannot write {}: the {} holding {} is full (the file needs about {}, {})", target,
                         err == EDQUOT ? "disk quota" : "disk", folder, human_bytes(static_cast<double>(size)),
                         free_space),
             fmt::format("free space there or choose a folder on another disk; {}", kept));
  }
  DP_THROW(fmt::format("cannot write {}: {} failed: {}", target, what, std::strerror(err)),
           fmt::format("the disk holding {} reported an error: check it (dmesg, df -h {}) before continuing; {}",
                       folder, folder, kept));
}

}  // namespace

std::string temporary_name(const std::string& target) { return fmt::format("{}.tmp.{}", target, ::getpid()); }

StagedFile::StagedFile(std::string target, const void* data, size_t size)
    : StagedFile(target, temporary_name(target), data, size) {}

StagedFile::StagedFile(std::string target, std::string temporary, const void* data, size_t size)
    : target_(std::move(target)), temporary_(std::move(temporary)), size_(size) {
  std::error_code made;
  fs::create_directories(folder_of(target_), made);  // an error shows at open, naming the file
  const int fd = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) fail(target_, "creating its temporary file", errno, size);
  pending_ = true;  // from here on the destructor removes the temporary
  const char* what = "write";
  int err = write_fully(fd, data, size, target_);
  if (err == 0) {
    what = "fsync";
    err = attempt(IoOp::kFsync, target_, [&] { return ::fsync(fd); });
  }
  // close() reports late write errors on network file systems: its result counts as much as fsync's.
  const int closed = attempt(IoOp::kClose, target_, [&] { return ::close(fd); });
  if (err == 0 && closed != 0) {
    what = "close";
    err = closed;
  }
  if (err != 0) {
    ::unlink(temporary_.c_str());
    pending_ = false;
    fail(target_, what, err, size);
  }
}

StagedFile::StagedFile(StagedFile&& other) noexcept
    : target_(std::move(other.target_)), temporary_(std::move(other.temporary_)), size_(other.size_),
      pending_(other.pending_) {
  other.pending_ = false;
}

StagedFile::~StagedFile() {
  if (pending_) ::unlink(temporary_.c_str());
}

void StagedFile::commit() {
  DP_CHECK(pending_, fmt::format("{} was already committed", target_), "commit a staged file once");
  rename_checked(temporary_, target_);
  pending_ = false;
  sync_folder_checked(target_);
}

void rename_checked(const std::string& from, const std::string& target) {
  if (const int err = attempt(IoOp::kRename, target, [&] { return ::rename(from.c_str(), target.c_str()); }))
    fail(target, "renaming its temporary over it", err, 0);
}

void sync_folder_checked(const std::string& target) {
  const std::string folder = folder_of(target);
  const int err = attempt(IoOp::kDirSync, target, [&] {
    const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return -1;
    const int synced = ::fsync(dir);
    const int saved = errno;
    ::close(dir);
    errno = saved;
    return synced;
  });
  DP_CHECK(err == 0,
           fmt::format("wrote {}, but the fsync of its folder failed: {}", target, std::strerror(err)),
           fmt::format("the file is complete, but a crash now could lose its new name: check the disk holding {} "
                       "(dmesg, df -h {}) before continuing",
                       folder, folder));
}

int remove_stale_temporaries(const std::string& folder) {
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t tag = name.rfind(".tmp.");
    if (tag == std::string::npos || tag == 0) continue;
    const std::string digits = name.substr(tag + 5);
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(digits));
    // kill(pid, 0) probes without signalling; ESRCH: no such process (EPERM: alive, not ours).
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) {
      std::error_code rm;
      if (fs::remove(it->path(), rm)) ++removed;
    }
  }
  return removed;
}

}  // namespace dp::io
