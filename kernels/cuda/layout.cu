// CUDA memory-format conversion (contract: kernels/layout.h): each image's [a, b] matrix is
// transposed through 32×32 shared-memory tiles (coalesced reads and writes), converting
// float32 <-> bf16 on the way when the dtypes differ.
#include "kernels/cuda/common.cuh"
#include "kernels/layout.h"

namespace dp::kernels::cuda {

namespace {

using detail::OpScope;

constexpr int kTile = 32, kRows = 8;

template <class To, class From>
__device__ __forceinline__ To convert_one(From v) {
  if constexpr (std::is_same_v<To, From>) return v;
  else if constexpr (std::is_same_v<To, __nv_bfloat16>) return __float2bfloat16_rn(v);
  else return __bfloat162float(v);
}

// grid (tiles along b, tiles along a, images); block (kTile, kRows).
template <class From, class To>
__global__ void transpose_kernel(const From* x, To* y, int64_t n, int64_t a, int64_t b) {
  __shared__ From tile[kTile][kTile + 1];  // +1: no bank conflicts on the transposed read
  const int64_t i0 = static_cast<int64_t>(blockIdx.y) * kTile, j0 = static_cast<int64_t>(blockIdx.x) * kTile;
  for (int64_t img = blockIdx.z; img < n; img += gridDim.z) {
    const From* xs = x + img * a * b;
    To* ys = y + img * a * b;
    for (int r = threadIdx.y; r < kTile; r += kRows) {
      const int64_t i = i0 + r, j = j0 + threadIdx.x;
      if (i < a && j < b) tile[r][threadIdx.x] = xs[i * b + j];
    }
    __syncthreads();
    for (int r = threadIdx.y; r < kTile; r += kRows) {
      const int64_t j = j0 + r, i = i0 + threadIdx.x;
      if (i < a && j < b) ys[j * a + i] = convert_one<To>(tile[threadIdx.x][r]);
    }
    __syncthreads();
  }
}

template <class From, class To>
void launch(const OpScope& op, const void* x, void* y, int64_t n, int64_t a, int64_t b) {
  const dim3 grid(static_cast<unsigned>((b + kTile - 1) / kTile), static_cast<unsigned>((a + kTile - 1) / kTile),
                  static_cast<unsigned>(std::min<int64_t>(n, 65535)));
  DP_CHECK((a + kTile - 1) / kTile <= 65535, "convert_layout: too many channels or pixels for one grid",
           "split the batch");
  transpose_kernel<From, To><<<grid, dim3(kTile, kRows), 0, op.stream()>>>(static_cast<const From*>(x),
                                                                           static_cast<To*>(y), n, a, b);
  DP_CUDA_CHECK_LAUNCH();
}

}  // namespace

void convert_layout(const Tensor& x, Tensor& y) {
  DP_CHECK(x.shape() == y.shape(), "convert_layout: shapes differ (" + x.str() + ", " + y.str() + ")", "");
  if (x.numel() == 0) return;
  OpScope op(x);
  const bool same_format = x.memory_format() == y.memory_format();
  const Shape& s = x.shape();
  int64_t n = 1, a = 1, b = x.numel();  // same format: one 1×numel "image" (a copy or a cast)
  if (!same_format) {
    const int64_t c = s[1], hw = s[2] * s[3];
    n = s[0];
    a = y.is_channels_last() ? c : hw;
    b = y.is_channels_last() ? hw : c;
  }
  if (same_format && x.dtype() == y.dtype()) {
    DP_CUDA_CHECK(cudaMemcpyAsync(y.raw_data(), x.raw_data(), x.nbytes(), cudaMemcpyDeviceToDevice, op.stream()));
    return;
  }
  const DType from = x.dtype(), to = y.dtype();
  if (from == to) {
    switch (dtype_size(from)) {
      case 1: return launch<uint8_t, uint8_t>(op, x.raw_data(), y.raw_data(), n, a, b);
      case 2: return launch<uint16_t, uint16_t>(op, x.raw_data(), y.raw_data(), n, a, b);
      case 4: return launch<uint32_t, uint32_t>(op, x.raw_data(), y.raw_data(), n, a, b);
      case 8: return launch<uint64_t, uint64_t>(op, x.raw_data(), y.raw_data(), n, a, b);
    }
  }
  if (from == DType::Float32 && to == DType::BFloat16)
    return launch<float, __nv_bfloat16>(op, x.raw_data(), y.raw_data(), n, a, b);
  if (from == DType::BFloat16 && to == DType::Float32)
    return launch<__nv_bfloat16, float>(op, x.raw_data(), y.raw_data(), n, a, b);
  DP_THROW(std::string("convert_layout: ") + dtype_name(from) + " to " + dtype_name(to) + " is not fused on CUDA",
           "cast first with kernels::cast, then convert the memory format");
}

}  // namespace dp::kernels::cuda
