#include "app/output_file.h"

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/error.h"

namespace dp::app {

void write_output_file(const std::string& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path tmp = target.parent_path() / fmt::format(".{}.{}.tmp", target.filename().string(), getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    DP_CHECK(out.good(), fmt::format("cannot write {}", path), "check that the folder exists and is writable");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out.good()) {
      out.close();
      std::error_code ignored;
      fs::remove(tmp, ignored);
      DP_THROW(fmt::format("writing {} failed", path), "check the free disk space");
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  DP_CHECK(!ec, fmt::format("cannot replace {}: {}", path, ec.message()), "check that the folder is writable");
}

}  // namespace dp::app
