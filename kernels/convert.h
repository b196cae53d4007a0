// The autograd side of conversions, shared by the conversion ops and the autocast weight cache.
#pragma once
#include "engine/tensor.h"

namespace dp::kernels::detail {

// Records that `out` is `in` converted (dtype and/or memory format) when `in` requires grad:
// the gradient goes back converted to in's dtype and memory format. That is what keeps the
// gradients of float32 contiguous master weights float32 and contiguous when the forward pass
// ran on bf16 channels-last copies.
void record_conversion(Tensor& out, const Tensor& in);

}  // namespace dp::kernels::detail
