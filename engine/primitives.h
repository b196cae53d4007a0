// The few computations the engine itself performs on tensor data: filling (Tensor::full and a
// bound gradient's zero_grad), dtype and memory-format conversion (Tensor::to, host copies,
// gradients kept in their tensor's format) and gradient accumulation (autograd). They are
// supplied by the kernel library at start-up, as the device backend supplies its allocator
// (engine/allocator.h), so that engine/ depends on no kernel and builds and tests on its own.
//
// kernels/engine_primitives.cpp registers the kernels:: implementations from a static initialiser
// that meson links whole into every user of dp_core (kernels/meson.build); a program linking
// the engine alone registers its own (tests/engine does) or gets a dp::Error naming the
// missing primitive.
#pragma once
#include "engine/tensor.h"

namespace dp {

struct EnginePrimitives {
  void (*fill)(Tensor& t, double value) = nullptr;                     // in place, every element
  Tensor (*cast)(const Tensor& x, DType dtype) = nullptr;               // same memory format
  Tensor (*convert)(const Tensor& x, DType dtype, MemoryFormat format) = nullptr;
  Tensor (*add)(const Tensor& a, const Tensor& b) = nullptr;            // a + b, a new tensor
  void (*accumulate)(Tensor& dst, const Tensor& src) = nullptr;        // dst += src in place
};

// Replaces the registered set (the latest call wins) and returns the previous one.
EnginePrimitives register_engine_primitives(const EnginePrimitives& primitives);

// The registered set; throws dp::Error when `what` (a member's name) is not registered.
const EnginePrimitives& engine_primitives(const char* what);

}  // namespace dp
