// Checked wrapper for the top-k counts (no autograd: a metric).
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/topk.h"

namespace dp::kernels {

void topk_correct_(Tensor& counts, const Tensor& logits, const Tensor& labels) {
  DP_CHECK(logits.defined() && labels.defined() && counts.defined(), "topk_correct_: undefined tensor",
           "pass logits, labels and the counts tensor");
  detail::check_dim("topk_correct_", "logits", logits, 2);
  DP_CHECK(logits.dtype() == DType::Float32 && labels.dtype() == DType::Int64 && labels.dim() == 1 &&
               labels.size(0) == logits.size(0),
           fmt::format("topk_correct_: logits {} and labels {} do not match", logits.str(), labels.str()),
           "float32 logits [B, C] and int64 labels [B]");
  DP_CHECK(counts.dtype() == DType::Int64 && counts.numel() == 2,
           "topk_correct_: counts must be int64 [2], got " + counts.str(), "use Tensor::zeros({2}, DType::Int64, device)");
  detail::check_same_device("topk_correct_", logits, labels);
  detail::check_same_device("topk_correct_", logits, counts);
  DP_DISPATCH(logits.device(), topk_correct_accumulate, logits, labels, counts);
  counts.bump_version();
}

}  // namespace dp::kernels
