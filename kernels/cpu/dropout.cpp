#include "kernels/dropout.h"

#include "engine/rng.h"
#include "engine/thread_pool.h"
#include "kernels/cpu/type_dispatch.h"

namespace dp::kernels::cpu {

void dropout_apply(const Tensor& x, double p, uint64_t seed, uint64_t stream, Tensor& y) {
  DP_CPU_FLOAT_TYPES(x.dtype(), "dropout", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    const scalar_t keep_scale = p < 1.0 ? static_cast<scalar_t>(1.0 / (1.0 - p)) : scalar_t(0);
    parallel_for(0, x.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      // One Philox block gives the words of four consecutive elements (philox_u32's layout).
      uint64_t block = ~uint64_t{0};
      Philox4x32 words{};
      for (int64_t i = b; i < e; ++i) {
        const uint64_t idx = static_cast<uint64_t>(i);
        if ((idx >> 2) != block) {
          block = idx >> 2;
          words = philox_block(seed, stream, block);
        }
        const bool keep = static_cast<double>(u32_to_uniform(words.v[idx & 3])) >= p;
        py[i] = keep ? px[i] * keep_scale : scalar_t(0);
      }
    });
  });
}

}  // namespace dp::kernels::cpu
