#include "engine/device.h"

#include "engine/error.h"

#ifdef DP_WITH_CUDA
#include "engine/cuda/context.h"
#endif

namespace dp {

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    try {
      return Device::cuda(std::stoi(text.substr(5)));
    } catch (const std::exception&) {
    }
  }
  DP_THROW("unknown device \"" + text + "\"", "use \"cpu\", \"cuda\" or \"cuda:N\"");
}

bool cuda_available() {
#ifdef DP_WITH_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

}  // namespace dp
