// Conversions: kernels::convert (no autograd) and the differentiable to_dtype / to_memory_format.
#include "engine/autograd.h"
#include "kernels/convert.h"
#include "kernels/dispatch.h"
#include "kernels/layout.h"
#include "kernels/ops.h"

namespace dp::kernels {

namespace {

struct ConvertNode final : Node {
  DType dtype;
  MemoryFormat format;
  ConvertNode(DType d, MemoryFormat f) : dtype(d), format(f) {}
  const char* name() const override { return "convert"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {convert(g, dtype, format)}; }
};

// float32 <-> bf16 and same-dtype conversions run in one pass on CUDA; the CPU always has both.
bool fused(Device device, DType from, DType to) {
  if (from == to || device.is_cpu()) return true;
  return (from == DType::Float32 && to == DType::BFloat16) || (from == DType::BFloat16 && to == DType::Float32);
}

}  // namespace

Tensor convert(const Tensor& x, DType dtype, MemoryFormat format) {
  DP_CHECK(x.defined(), "convert: input is undefined", "pass a tensor");
  if (formats_coincide(x.shape())) format = MemoryFormat::Contiguous;
  if (x.memory_format() == format) return x.dtype() == dtype ? x : cast(x, dtype);
  if (!fused(x.device(), x.dtype(), dtype)) return convert(cast(x, dtype), dtype, format);
  Tensor y = Tensor::empty(x.shape(), dtype, x.device(), format);
  DP_DISPATCH(x.device(), convert_layout, x, y);
  return y;
}

namespace detail {
void record_conversion(Tensor& out, const Tensor& in) {
  if (!any_requires_grad({&in})) return;
  DP_CHECK(is_floating(out.dtype()),
           fmt::format("cannot differentiate a conversion of {} to {}", in.str(), out.str()),
           "convert to a floating dtype, or detach() the input first");
  record_node(out, std::make_shared<ConvertNode>(in.dtype(), in.memory_format()), {in});
}
}  // namespace detail

Tensor to_dtype(const Tensor& x, DType dtype) {
  DP_CHECK(x.defined(), "to_dtype: input is undefined", "pass a tensor");
  if (x.dtype() == dtype) return x;
  Tensor y = cast(x, dtype);
  detail::record_conversion(y, x);
  return y;
}

Tensor to_memory_format(const Tensor& x, MemoryFormat format) {
  DP_CHECK(x.defined(), "to_memory_format: input is undefined", "pass a tensor");
  DP_CHECK(format == MemoryFormat::Contiguous || x.dim() == 4,
           fmt::format("to_memory_format: channels_last needs a 4-D [N, C, H, W] tensor, got {}", x.str()),
           "convert only batches of images");
  Tensor y = convert(x, x.dtype(), format);
  if (!y.same(x)) detail::record_conversion(y, x);
  return y;
}

}  // namespace dp::kernels
