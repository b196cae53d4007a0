// CUDA inverted dropout (contract: kernels/dropout.h). Each thread draws one Philox block and
// uses its four words for four consecutive elements, exactly as the CPU does, so the masks agree.
#include "engine/rng.h"
#include "kernels/cuda/common.cuh"
#include "kernels/dropout.h"

namespace dp::kernels::cuda {

namespace {

using detail::grid_for;
using detail::kThreads;
using detail::OpScope;

template <class T>
__global__ void dropout_kernel(const T* x, T* y, int64_t n, double p, detail::acc_t<T> keep_scale, uint64_t seed,
                               uint64_t stream) {
  DP_GRID_STRIDE(block, (n + 3) / 4) {
    const Philox4x32 words = philox_block(seed, stream, static_cast<uint64_t>(block));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = block * 4 + k;
      if (i < n) {
        const bool keep = static_cast<double>(u32_to_uniform(words.v[k])) >= p;
        y[i] = detail::from_acc<T>(keep ? detail::to_acc(x[i]) * keep_scale : detail::acc_t<T>(0));
      }
    }
  }
}

}  // namespace

void dropout_apply(const Tensor& x, double p, uint64_t seed, uint64_t stream, Tensor& y) {
  const int64_t n = x.numel();
  if (n == 0) return;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "dropout", [&] {
    using acc = detail::acc_t<scalar_t>;
    const acc keep_scale = p < 1.0 ? static_cast<acc>(1.0 / (1.0 - p)) : acc(0);
    dropout_kernel<<<grid_for(op.ctx, (n + 3) / 4), kThreads, 0, op.stream()>>>(
        x.data<scalar_t>(), y.data<scalar_t>(), n, p, keep_scale, seed, stream);
    DP_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace dp::kernels::cuda
