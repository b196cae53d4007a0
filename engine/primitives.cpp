#include "engine/primitives.h"

#include <string>
#include <string_view>

namespace dp {

namespace {
EnginePrimitives& registered() {
  static EnginePrimitives p;
  return p;
}
}  // namespace

EnginePrimitives register_engine_primitives(const EnginePrimitives& primitives) {
  EnginePrimitives previous = registered();
  registered() = primitives;
  return previous;
}

const EnginePrimitives& engine_primitives(const char* what) {
  const EnginePrimitives& p = registered();
  const std::string_view name(what);  // no allocation: called for every gradient accumulation
  const bool present = (name == "fill" && p.fill) || (name == "cast" && p.cast) ||
                       (name == "convert" && p.convert) || (name == "add" && p.add) ||
                       (name == "accumulate" && p.accumulate);
  DP_CHECK(present, "the engine primitive '" + std::string(name) + "' is not registered",
           "link the kernel library (dp_core, kernels/) into the program, or call "
           "dp::register_engine_primitives() first");
  return p;
}

}  // namespace dp
