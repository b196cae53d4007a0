#include "io/io_fault.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>

#include "engine/error.h"

namespace dp::io {

namespace {

struct Fault {
  std::optional<IoOp> op;
  std::string name;  // "" = every file
};

Fault parse(const std::string& spec) {
  Fault f;
  if (spec.empty()) return f;
  const size_t colon = spec.find(':');
  const std::string op = spec.substr(0, colon);
  if (colon != std::string::npos) f.name = spec.substr(colon + 1);
  if (op == "write") f.op = IoOp::kWrite;
  else if (op == "fsync") f.op = IoOp::kFsync;
  else if (op == "close") f.op = IoOp::kClose;
  else if (op == "rename") f.op = IoOp::kRename;
  else if (op == "dirsync") f.op = IoOp::kDirSync;
  else
    DP_THROW(fmt::format("DP_IO_FAULT = \"{}\": unknown operation \"{}\"", spec, op),
             "use write, fsync, close, rename or dirsync, optionally followed by :FILENAME (a test seam)");
  return f;
}

std::mutex mutex;  // writes may come from a background thread
std::optional<Fault> fault;  // unset until the first operation reads DP_IO_FAULT

}  // namespace

void set_io_fault(const std::string& spec) {
  Fault f = parse(spec);
  std::lock_guard<std::mutex> lock(mutex);
  fault = std::move(f);
}

int injected_io_error(IoOp op, const std::string& target) {
  std::lock_guard<std::mutex> lock(mutex);
  if (!fault) {
    const char* env = std::getenv("DP_IO_FAULT");
    fault = parse(env ? env : "");
  }
  if (fault->op != op) return 0;
  if (!fault->name.empty() && std::filesystem::path(target).filename() != fault->name) return 0;
  return op == IoOp::kWrite ? ENOSPC : EIO;
}

int write_fully(int fd, const void* data, size_t size, const std::string& target) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    if (const int injected = injected_io_error(IoOp::kWrite, target)) return injected;
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    p += n, size -= static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace dp::io
