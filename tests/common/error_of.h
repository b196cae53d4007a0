// The message of the dp::Error that `f` throws, or "" when it throws none (the caller's
// expectations on the message then fail).
#pragma once
#include <functional>
#include <string>

#include "engine/error.h"

namespace dp::testing {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dp::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace dp::testing
