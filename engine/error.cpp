#include "engine/error.h"

#include <fmt/format.h>

namespace dp {

static std::string compose(const std::string& message, const std::string& hint, const char* file,
                           int line) {
  std::string text = fmt::format("{} [{}:{}]", message, file, line);
  if (!hint.empty()) text += fmt::format("\n  hint: {}", hint);
  return text;
}

Error::Error(const std::string& message, const std::string& hint, const char* file, int line)
    : std::runtime_error(compose(message, hint, file, line)),
      message_(message),
      hint_(hint),
      file_(file),
      line_(line) {}

void throw_error(const char* file, int line, const std::string& message, const std::string& hint) {
  throw Error(message, hint, file, line);
}

}  // namespace dp
