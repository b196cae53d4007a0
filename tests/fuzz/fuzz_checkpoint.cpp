// The HDF5 checkpoint reader through the schema. The net to compare with is fixed (tiny-cnn,
// 10 classes) so that a mutated arch attribute cannot make every input build a large net.
#include "engine/error.h"
#include "nets/registry.h"
#include "tests/fuzz/fuzz_util.h"
#include "app/checkpoint_schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const dp::layers::ModulePtr reference = dp::nets::make_net("tiny-cnn", 10);
  const std::string path = dp::fuzz::write_input(data, size, "checkpoint.h5");
  try {
    dp::app::read_checkpoint(path, reference.get());
  } catch (const dp::Error&) {
  }
  return 0;
}
