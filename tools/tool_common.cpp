#include "tools/tool_common.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#include "engine/error.h"
#include "tools/build_info.h"
#include "tools/version.h"

namespace dp::tools {

std::string version_text(const std::string& tool) {
  return fmt::format("{} {} (commit {})\nbuild: {}, C++ {}, CUDA {}{}\n", tool, DP_PROJECT_VERSION, DP_VCS_TAG,
                     DP_BUILD_TYPE, DP_CXX_COMPILER, DP_CUDA_ENABLED ? "enabled" : "disabled",
                     DP_CUDA_ENABLED ? fmt::format(" (GPU architectures {})", DP_GPU_ARCH) : std::string());
}

void add_version_flag(CLI::App& app, const std::string& tool) {
  app.add_flag_callback(
      "--version",
      [tool] {
        std::fputs(version_text(tool).c_str(), stdout);
        std::exit(0);
      },
      "print the version, commit and build options, then exit");
}

Device checked_device(const std::string& text) {
  const Device device = parse_device(text);
  // The same words as dp-train's check, instead of the driver's raw error at the first allocation.
  DP_CHECK(!device.is_cuda() || cuda_available(),
           fmt::format("run.device = \"{}\" but no CUDA device is available", device.str()),
           "use the CPU (run.device = \"cpu\", --device cpu), or run on a machine with an NVIDIA GPU and a CUDA build");
  return device;
}

}  // namespace dp::tools
