// CPU top-k counts (contract: kernels/topk.h).
#include "kernels/topk.h"

namespace dp::kernels::cpu {

void topk_correct_accumulate(const Tensor& logits, const Tensor& labels, Tensor& counts) {
  const int64_t rows = logits.size(0), classes = logits.size(1);
  const float* z = logits.data<float>();
  const int64_t* y = labels.data<int64_t>();
  int64_t* out = counts.data<int64_t>();
  for (int64_t i = 0; i < rows; ++i) {
    if (y[i] < 0 || y[i] >= classes) continue;
    const float* row = z + i * classes;
    const float target = row[y[i]];
    int64_t higher = 0;
    for (int64_t c = 0; c < classes; ++c) higher += row[c] > target ? 1 : 0;
    out[0] += higher < 1 ? 1 : 0;
    out[1] += higher < 5 ? 1 : 0;
  }
}

}  // namespace dp::kernels::cpu
