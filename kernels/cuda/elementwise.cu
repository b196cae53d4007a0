// CUDA elementwise kernels and reductions (contract: kernels/elementwise.h).
#include "kernels/cuda/common.cuh"
#include "kernels/elementwise.h"

namespace dp::kernels::cuda {

namespace {

using detail::grid_for;
using detail::kThreads;
using detail::OpScope;
using detail::acc_t;
using detail::from_acc;
using detail::to_acc;

// ---- kernels ----

// bfloat16 on the device: the raw 16 bits, converted exactly as dp::bfloat16 does on the host.
struct bf16_bits {
  uint16_t bits;
};

__device__ __forceinline__ float bf16_to_float(bf16_bits b) {
  return __uint_as_float(static_cast<uint32_t>(b.bits) << 16);
}
__device__ __forceinline__ bf16_bits float_to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {static_cast<uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return {static_cast<uint16_t>(u >> 16)};
}

template <class To, class From>
__device__ __forceinline__ To convert_value(From v) {
  if constexpr (std::is_same_v<To, bf16_bits> && std::is_same_v<From, bf16_bits>) return v;
  else if constexpr (std::is_same_v<To, bf16_bits>) return float_to_bf16(static_cast<float>(v));
  else if constexpr (std::is_same_v<From, bf16_bits>) return static_cast<To>(bf16_to_float(v));
  else return static_cast<To>(v);
}

template <class T>
__global__ void fill_kernel(T* p, T value, int64_t n) {
  DP_GRID_STRIDE(i, n) p[i] = value;
}

template <class From, class To>
__global__ void cast_kernel(const From* x, To* y, int64_t n) {
  DP_GRID_STRIDE(i, n) y[i] = convert_value<To>(x[i]);
}

template <class T>
__global__ void add_kernel(const T* a, const T* b, T* out, int64_t n, bool relu) {
  DP_GRID_STRIDE(i, n) {
    const acc_t<T> v = to_acc(a[i]) + to_acc(b[i]);
    out[i] = from_acc<T>(relu && !(v > acc_t<T>(0)) ? acc_t<T>(0) : v);
  }
}

template <class T>
__global__ void axpy_kernel(acc_t<T> alpha, const T* x, T* y, int64_t n) {
  DP_GRID_STRIDE(i, n) y[i] = from_acc<T>(to_acc(y[i]) + alpha * to_acc(x[i]));
}

template <class T>
__global__ void scale_kernel(const T* x, acc_t<T> s, T* out, int64_t n) {
  DP_GRID_STRIDE(i, n) out[i] = from_acc<T>(to_acc(x[i]) * s);
}

template <class T>
__global__ void scale_by_tensor_kernel(const T* x, const T* s, T* out, int64_t n) {
  const acc_t<T> f = to_acc(*s);
  DP_GRID_STRIDE(i, n) out[i] = from_acc<T>(to_acc(x[i]) * f);
}

template <class T>
__global__ void relu_forward_kernel(const T* x, T* y, int64_t n) {
  DP_GRID_STRIDE(i, n) y[i] = to_acc(x[i]) > acc_t<T>(0) ? x[i] : from_acc<T>(acc_t<T>(0));
}

template <class T>
__global__ void relu_backward_kernel(const T* y, const T* dy, T* dx, int64_t n) {
  DP_GRID_STRIDE(i, n) dx[i] = to_acc(y[i]) > acc_t<T>(0) ? dy[i] : from_acc<T>(acc_t<T>(0));
}

__device__ __forceinline__ double block_sum(double v) {
  __shared__ double warp_sums[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  int nwarps = (blockDim.x + 31) / 32;
  v = threadIdx.x < nwarps ? warp_sums[threadIdx.x] : 0.0;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;  // valid in thread 0
}

// Two passes with a fixed number of blocks: the same summation order on every run.
template <class T>
__global__ void sum_partial_kernel(const T* x, int64_t n, double* partial) {
  double acc = 0.0;
  DP_GRID_STRIDE(i, n) acc += static_cast<double>(to_acc(x[i]));
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

template <class T>
__global__ void sum_final_kernel(const double* partial, int nparts, T* out) {
  double acc = 0.0;
  for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) out[0] = from_acc<T>(acc);
}

template <class T>
__global__ void broadcast_scalar_kernel(const T* s, double factor, T* out, int64_t n) {
  T v = from_acc<T>(static_cast<double>(to_acc(s[0])) * factor);
  DP_GRID_STRIDE(i, n) out[i] = v;
}

// Calls body.template operator()<T>() with T the device type of `dtype`.
template <class Body>
void for_any_dtype(DType dtype, const char* op, Body&& body) {
  switch (dtype) {
    case DType::Float32: return body.template operator()<float>();
    case DType::Float64: return body.template operator()<double>();
    case DType::BFloat16: return body.template operator()<bf16_bits>();
    case DType::Int32: return body.template operator()<int32_t>();
    case DType::Int64: return body.template operator()<int64_t>();
    case DType::UInt8: return body.template operator()<uint8_t>();
    default: detail::unsupported_dtype(op, dtype);
  }
}

constexpr int kSumBlocks = 512;

}  // namespace

// ---- launchers ----

void fill(Tensor& t, double value) {
  int64_t n = t.numel();
  if (n == 0) return;
  OpScope op(t);
  for_any_dtype(t.dtype(), "fill", [&]<class T>() {
    T v;
    if constexpr (std::is_same_v<T, bf16_bits>) v = {bfloat16(static_cast<float>(value)).bits};
    else v = static_cast<T>(value);
    fill_kernel<T><<<grid_for(op.ctx, n), kThreads, 0, op.stream()>>>(static_cast<T*>(t.raw_data()), v, n);
    DP_CUDA_CHECK_LAUNCH();
  });
}

void cast(const Tensor& x, Tensor& y) {
  int64_t n = x.numel();
  if (n == 0) return;
  OpScope op(x);
  for_any_dtype(x.dtype(), "cast", [&]<class From>() {
    for_any_dtype(y.dtype(), "cast", [&]<class To>() {
      cast_kernel<From, To><<<grid_for(op.ctx, n), kThreads, 0, op.stream()>>>(
          static_cast<const From*>(x.raw_data()), static_cast<To*>(y.raw_data()), n);
      DP_CUDA_CHECK_LAUNCH();
    });
  });
}

void add(const Tensor& a, const Tensor& b, Tensor& out, bool relu) {
  int64_t n = a.numel();
  if (n == 0) return;
  OpScope op(a);
  DP_CUDA_FLOAT_TYPES_BF16(a.dtype(), "add", [&] {
    add_kernel<<<grid_for(op.ctx, n), kThreads, 0, op.stream()>>>(
        a.data<scalar_t>(), b.data<scalar_t>(), out.data<scalar_t>(), n, relu);
    DP_CUDA_CHECK_LAUNCH();
  });
}

void axpy(double alpha, const Tensor& x, Tensor& y) {
  int64_t n = x.numel();
  if (n == 0) return;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "axpy", [&] {
    axpy_kernel<<<grid_for(op.ctx, n), kThreads, 0, op.stream()>>>(
        static_cast<acc_t<scalar_t>>(alpha), x.data<scalar_t>(), y.data<scalar_t>(), n);
    DP_CUDA_CHECK_LAUNCH();
  });
}

void scale(const Tensor& x, double s, Tensor& out) {
  int64_t n = x.numel();
  if (n == 0) return;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "scale", [&] {
    scale_kernel<<<grid_for(op.ctx, n), kThreads, 0, op.stream()>>>(
        x.data<scalar_t>(), static_cast<acc_t<scalar_t>>(s), out.data<scalar_t>(), n);
    DP_CUDA_CHECK_LAUNCH();
  });
}

void scale_by_tensor(const Tensor& x, const Tensor& s, Tensor& out) {
  int64_t n = x.numel();
  if (n == 0) return;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "scale_by_tensor", [&] {
    scale_by_tensor_kernel<<<grid_for(op.ctx, n), kThreads, 0, op.stream()>>>(x.data<scalar_t>(), s.data<scalar_t>(),
                                                                               out.data<scalar_t>(), n);
    DP_CUDA_CHECK_LAUNCH();
  });
}

void relu_forward(const Tensor& x, Tensor& y) {
  int64_t n = x.numel();
  if (n == 0) return;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "relu", [&] {
    relu_forward_kernel<<<grid_for(op.ctx, n), kThreads, 0, op.stream()>>>(
        x.data<scalar_t>(), y.data<scalar_t>(), n);
    DP_CUDA_CHECK_LAUNCH();
  });
}

void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  int64_t n = y.numel();
  if (n == 0) return;
  OpScope op(y);
  DP_CUDA_FLOAT_TYPES_BF16(y.dtype(), "relu_backward", [&] {
    relu_backward_kernel<<<grid_for(op.ctx, n), kThreads, 0, op.stream()>>>(
        y.data<scalar_t>(), dy.data<scalar_t>(), dx.data<scalar_t>(), n);
    DP_CUDA_CHECK_LAUNCH();
  });
}

void sum_all(const Tensor& x, Tensor& out) {
  OpScope op(x);
  int64_t n = x.numel();
  Tensor partial = Tensor::empty({kSumBlocks}, DType::Float64, x.device());
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "sum", [&] {
    sum_partial_kernel<<<kSumBlocks, kThreads, 0, op.stream()>>>(x.data<scalar_t>(), n,
                                                                 partial.data<double>());
    DP_CUDA_CHECK_LAUNCH();
    sum_final_kernel<<<1, kThreads, 0, op.stream()>>>(partial.data<double>(), kSumBlocks,
                                                      out.data<scalar_t>());
    DP_CUDA_CHECK_LAUNCH();
  });
}

void broadcast_scalar(const Tensor& s, double factor, Tensor& out) {
  int64_t n = out.numel();
  if (n == 0) return;
  OpScope op(out);
  DP_CUDA_FLOAT_TYPES_BF16(out.dtype(), "broadcast_scalar", [&] {
    broadcast_scalar_kernel<<<grid_for(op.ctx, n), kThreads, 0, op.stream()>>>(
        s.data<scalar_t>(), factor, out.data<scalar_t>(), n);
    DP_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace dp::kernels::cuda
