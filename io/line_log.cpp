#include "io/line_log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "engine/error.h"
#include "io/io_fault.h"

namespace dp::io {

namespace {

std::string folder_hint(const std::string& path) {
  std::string folder = std::filesystem::path(path).parent_path().string();
  if (folder.empty()) folder = ".";
  return fmt::format("free space on the disk holding {} (df -h {}) or check it (dmesg); the lines before this one "
                     "are in the file",
                     folder, folder);
}

}  // namespace

LineLog::LineLog(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  DP_CHECK(fd_ >= 0, fmt::format("cannot open {} for appending: {}", path_, std::strerror(errno)), folder_hint(path_));
}

LineLog::LineLog(LineLog&& other) noexcept : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

LineLog& LineLog::operator=(LineLog&& other) noexcept {
  if (this != &other) {
    close();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

LineLog::~LineLog() { close(); }

void LineLog::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void LineLog::append(std::string_view line) {
  DP_CHECK(is_open(), "LineLog::append on a log that is not open", "open it with a path first");
  std::string text(line);
  text += '\n';
  if (const int err = write_fully(fd_, text.data(), text.size(), path_))
    DP_THROW(fmt::format("cannot append to {}: {}", path_, std::strerror(err)), folder_hint(path_));
}

}  // namespace dp::io
