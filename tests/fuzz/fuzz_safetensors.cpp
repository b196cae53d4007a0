// The safetensors reader (model.init_from).
#include "engine/error.h"
#include "tests/fuzz/fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dp::fuzz::write_input(data, size, "w.safetensors");
  try {
    dp::io::read_safetensors(path);
  } catch (const dp::Error&) {
  }
  return 0;
}
