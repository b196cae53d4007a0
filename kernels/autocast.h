// The cast policy of the autocast mode (engine/autocast.h), shared by the op wrappers.
#pragma once
#include <initializer_list>

#include "engine/autocast.h"
#include "engine/tensor.h"

namespace dp::kernels::autocast {

// True when autocast is on and one of the (defined) tensors is float32, i.e. the op should cast
// its inputs to the autocast dtype. Throws on CPU tensors: the bf16 mode is CUDA-only.
bool applies_to(const char* op, std::initializer_list<const Tensor*> tensors);

// A float32 `t` cast to the autocast dtype, differentiably (other dtypes are returned as they are).
Tensor lower(const Tensor& t);

// Like lower(), for parameters, in the given memory format: the cast of a leaf is computed
// once per autocast region, storage version and format (so repeated forward passes between
// optimiser steps reuse it), in one pass even when the format changes too.
Tensor lower_weight(const Tensor& w, MemoryFormat format = MemoryFormat::Contiguous);

}  // namespace dp::kernels::autocast
