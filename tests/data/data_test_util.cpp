#include "data_test_util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace dp::data::test_util {

namespace fs = std::filesystem;

std::string shared_data_dir() {
  const char* env = std::getenv("DP_SHARED_DIR");
  fs::path dir = env ? fs::path(env) / "data" : fs::path("../shared/data");
  return fs::is_directory(dir) ? dir.string() : std::string();
}

std::string source_dir() {
  const char* env = std::getenv("DP_SOURCE_DIR");
  return env ? std::string(env) : std::string(".");
}

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "dp-data-test-XXXXXX").string();
  if (char* made = mkdtemp(pattern.data())) path_ = made;
}

TempDir::~TempDir() {
  std::error_code ignored;
  if (!path_.empty()) fs::remove_all(path_, ignored);
}

static std::string quote(const std::string& text) {
  std::string quoted = "'";
  for (char ch : text) quoted += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return quoted + "'";
}

bool extract_tar(const std::string& tar, const std::string& dir,
                 const std::vector<std::string>& patterns) {
  std::string command = "tar -xf " + quote(tar) + " -C " + quote(dir);
  if (!patterns.empty()) {
    command += " --wildcards";
    for (const auto& p : patterns) command += " " + quote(p);
  }
  return std::system(command.c_str()) == 0;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace dp::data::test_util
