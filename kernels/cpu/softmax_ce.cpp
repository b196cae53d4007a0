// Softmax cross-entropy with a stable log-sum-exp; per-row losses are summed in row order.
#include "kernels/softmax_ce.h"

#include <fmt/format.h>

#include <cmath>
#include <vector>

#include "engine/thread_pool.h"
#include "kernels/cpu/type_dispatch.h"

namespace dp::kernels::cpu {

void softmax_ce_forward_backward(const Tensor& logits, const Tensor& labels, Tensor& loss,
                                 Tensor& dlogits) {
  const int64_t B = logits.size(0), C = logits.size(1);
  const int64_t* py = labels.data<int64_t>();
  for (int64_t i = 0; i < B; ++i)
    DP_CHECK(py[i] >= 0 && py[i] < C,
             fmt::format("cross_entropy: label {} of row {} is outside [0, {})", py[i], i, C),
             "labels must be class indices in [0, num_classes); check the dataset's labels "
             "and the model's number of outputs");
  DP_CPU_FLOAT_TYPES(logits.dtype(), "cross_entropy", [&] {
    const scalar_t* pz = logits.data<scalar_t>();
    scalar_t* pd = dlogits.data<scalar_t>();
    std::vector<double> row_loss(static_cast<size_t>(B));
    const double inv_b = 1.0 / static_cast<double>(B);
    parallel_for(0, B, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)), [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; ++i) {
        const scalar_t* z = pz + i * C;
        scalar_t* d = pd + i * C;
        double zmax = z[0];
        for (int64_t j = 1; j < C; ++j) zmax = std::max<double>(zmax, z[j]);
        double sum = 0.0;
        for (int64_t j = 0; j < C; ++j) sum += std::exp(static_cast<double>(z[j]) - zmax);
        const double log_sum = std::log(sum);
        row_loss[static_cast<size_t>(i)] = log_sum + zmax - z[py[i]];
        const double inv_sum = 1.0 / sum;
        for (int64_t j = 0; j < C; ++j)
          d[j] = static_cast<scalar_t>(std::exp(static_cast<double>(z[j]) - zmax) * inv_sum * inv_b);
        d[py[i]] -= static_cast<scalar_t>(inv_b);
      }
    });
    double total = 0.0;
    for (double l : row_loss) total += l;
    loss.data<scalar_t>()[0] = static_cast<scalar_t>(total * inv_b);
  });
}

}  // namespace dp::kernels::cpu
