// Registers the kernels' implementations of the engine's primitives (engine/primitives.h).
// Linked whole into every program that uses dp_core (kernels/meson.build), so the static
// initialiser below is never dropped by the linker.
#include "engine/primitives.h"
#include "kernels/ops.h"

namespace dp::kernels {

namespace {

void fill(Tensor& t, double value) { fill_(t, value); }
void accumulate(Tensor& dst, const Tensor& src) { add_(dst, src); }

const bool g_registered = [] {
  EnginePrimitives p;
  p.fill = &fill;
  p.cast = &kernels::cast;
  p.convert = &kernels::convert;
  p.add = &kernels::add;
  p.accumulate = &accumulate;
  register_engine_primitives(p);
  return true;
}();

}  // namespace

}  // namespace dp::kernels
