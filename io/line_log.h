// A text file that grows by whole lines (a run's metrics.jsonl). Each line goes out in one
// write() whose result is checked, so a full disk or a failing write stops the run with a message
// naming the file instead of losing lines without a word (DP_IO_FAULT=write:NAME injects the
// failure, io/io_fault.h). Lines are not fsynced: a line cut short by a crash is dropped when the
// run resumes (app/trainer.cpp trims the file).
#pragma once
#include <string>
#include <string_view>

namespace dp::io {

class LineLog {
 public:
  LineLog() = default;
  // Opens `path` for appending, creating it; throws dp::Error naming it.
  explicit LineLog(std::string path);
  LineLog(LineLog&& other) noexcept;
  LineLog& operator=(LineLog&& other) noexcept;
  LineLog(const LineLog&) = delete;
  LineLog& operator=(const LineLog&) = delete;
  ~LineLog();

  bool is_open() const { return fd_ >= 0; }
  // Appends `line` and a newline; throws dp::Error naming the file when the write fails.
  void append(std::string_view line);

 private:
  void close();
  std::string path_;
  int fd_ = -1;
};

}  // namespace dp::io
