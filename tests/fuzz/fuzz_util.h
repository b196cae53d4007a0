// Shared by the libFuzzer harnesses: a private temporary file for readers that take a path,
// and the rule that a dp::Error is the expected answer to bad input (anything else escaping,
// a crash or a sanitizer report is a finding).
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace dp::fuzz {

// A file in a per-process folder (fuzzers may run in parallel jobs), rewritten each input.
inline std::string write_input(const uint8_t* data, size_t size, const std::string& name) {
  static const std::string dir = [] {
    std::string d = (std::filesystem::temp_directory_path() / ("dp-fuzz-" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(d);
    return d;
  }();
  const std::string path = dir + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) __builtin_trap();
  if (size > 0) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

}  // namespace dp::fuzz
