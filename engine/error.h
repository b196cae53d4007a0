// Errors are exceptions that carry where they were raised and what the user can do about it.
#pragma once
#include <stdexcept>
#include <string>

namespace dp {

class Error : public std::runtime_error {
 public:
  Error(const std::string& message, const std::string& hint, const char* file, int line);
  const std::string& message() const { return message_; }
  const std::string& hint() const { return hint_; }
  const char* file() const { return file_; }
  int line() const { return line_; }

 private:
  std::string message_, hint_;
  const char* file_;
  int line_;
};

[[noreturn]] void throw_error(const char* file, int line, const std::string& message,
                              const std::string& hint);

}  // namespace dp

// DP_CHECK(cond, message, hint): throws dp::Error naming file:line when cond is false.
#define DP_CHECK(cond, message, hint)                              \
  do {                                                             \
    if (!(cond)) ::dp::throw_error(__FILE__, __LINE__, (message), (hint)); \
  } while (0)

#define DP_THROW(message, hint) ::dp::throw_error(__FILE__, __LINE__, (message), (hint))
