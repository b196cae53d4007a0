// CUDA pooling over NCHW (contract: kernels/pooling.h): one thread per output for the forward
// passes; the backward passes gather (one thread per input element, summing the windows that
// cover it in the CPU's order) instead of scattering with atomics, so they are deterministic.
#include <cfloat>

#include "kernels/cuda/common.cuh"
#include "kernels/pooling.h"

namespace dp::cuda {

namespace {

using detail::grid_for;
using detail::kThreads;
using detail::OpScope;
using detail::acc_t;
using detail::from_acc;
using detail::to_acc;

struct Geo {
  int64_t planes, h, w, k, s, pad, p, q;
};

Geo geo_of(const Pool2dGeometry& g) { return {g.n * g.c, g.h, g.w, g.kernel, g.stride, g.pad, g.p, g.q}; }

// Output rows (or columns) whose window covers input row h: [first, last].
__device__ __forceinline__ void covering(int64_t h, int64_t k, int64_t s, int64_t pad, int64_t p_count,
                                         int64_t& first, int64_t& last) {
  int64_t hi = h + pad;                      // window p covers h when p·s <= hi < p·s + k
  int64_t lo = hi - k + 1;
  first = lo <= 0 ? 0 : (lo + s - 1) / s;
  last = min(hi / s, p_count - 1);
}

template <class T>
__global__ void max_pool_forward_kernel(const T* x, T* y, int32_t* argmax, Geo g) {
  DP_GRID_STRIDE(i, g.planes * g.p * g.q) {
    const int64_t q = i % g.q, p = (i / g.q) % g.p, plane = i / (g.p * g.q);
    const T* xp = x + plane * g.h * g.w;
    const int64_t h0 = max(p * g.s - g.pad, int64_t{0}), h1 = min(p * g.s - g.pad + g.k, g.h);
    const int64_t w0 = max(q * g.s - g.pad, int64_t{0}), w1 = min(q * g.s - g.pad + g.k, g.w);
    acc_t<T> best = -INFINITY;
    int64_t where = h0 * g.w + w0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) {
        const acc_t<T> v = to_acc(xp[h * g.w + w]);
        if (v > best || v != v) {  // first maximum wins; NaN propagates (as on the CPU)
          best = v;
          where = h * g.w + w;
          if (v != v) goto done;
        }
      }
  done:
    y[i] = from_acc<T>(best);
    argmax[i] = static_cast<int32_t>(where);
  }
}

template <class T>
__global__ void max_pool_backward_kernel(const T* dy, const int32_t* argmax, T* dx, Geo g) {
  DP_GRID_STRIDE(i, g.planes * g.h * g.w) {
    const int64_t w = i % g.w, h = (i / g.w) % g.h, plane = i / (g.h * g.w);
    const int32_t here = static_cast<int32_t>(h * g.w + w);
    int64_t p0, p1, q0, q1;
    covering(h, g.k, g.s, g.pad, g.p, p0, p1);
    covering(w, g.k, g.s, g.pad, g.q, q0, q1);
    const int64_t base = plane * g.p * g.q;
    acc_t<T> acc = 0;
    for (int64_t p = p0; p <= p1; ++p)
      for (int64_t q = q0; q <= q1; ++q)
        if (argmax[base + p * g.q + q] == here) acc += to_acc(dy[base + p * g.q + q]);
    dx[i] = from_acc<T>(acc);
  }
}

// count_include_pad in floor mode: the divisor is always kernel².
template <class T>
__global__ void avg_pool_forward_kernel(const T* x, T* y, Geo g, acc_t<T> inv) {
  DP_GRID_STRIDE(i, g.planes * g.p * g.q) {
    const int64_t q = i % g.q, p = (i / g.q) % g.p, plane = i / (g.p * g.q);
    const T* xp = x + plane * g.h * g.w;
    const int64_t h0 = max(p * g.s - g.pad, int64_t{0}), h1 = min(p * g.s - g.pad + g.k, g.h);
    const int64_t w0 = max(q * g.s - g.pad, int64_t{0}), w1 = min(q * g.s - g.pad + g.k, g.w);
    acc_t<T> acc = 0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) acc += to_acc(xp[h * g.w + w]);
    y[i] = from_acc<T>(acc * inv);
  }
}

template <class T>
__global__ void avg_pool_backward_kernel(const T* dy, T* dx, Geo g, acc_t<T> inv) {
  DP_GRID_STRIDE(i, g.planes * g.h * g.w) {
    const int64_t w = i % g.w, h = (i / g.w) % g.h, plane = i / (g.h * g.w);
    int64_t p0, p1, q0, q1;
    covering(h, g.k, g.s, g.pad, g.p, p0, p1);
    covering(w, g.k, g.s, g.pad, g.q, q0, q1);
    const int64_t base = plane * g.p * g.q;
    acc_t<T> acc = 0;
    for (int64_t p = p0; p <= p1; ++p)
      for (int64_t q = q0; q <= q1; ++q) acc += to_acc(dy[base + p * g.q + q]) * inv;
    dx[i] = from_acc<T>(acc);
  }
}

// One warp per plane.
template <class T>
__global__ void global_avg_forward_kernel(const T* x, T* y, int64_t planes, int64_t hw) {
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  for (int64_t plane = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; plane < planes;
       plane += warps) {
    const T* xp = x + plane * hw;
    double acc = 0.0;
    for (int64_t i = lane; i < hw; i += 32) acc += static_cast<double>(to_acc(xp[i]));
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
    if (lane == 0) y[plane] = from_acc<T>(acc / static_cast<double>(hw));
  }
}

template <class T>
__global__ void global_avg_backward_kernel(const T* dy, T* dx, int64_t hw, int64_t n, acc_t<T> inv) {
  DP_GRID_STRIDE(i, n) dx[i] = from_acc<T>(to_acc(dy[i / hw]) * inv);
}

}  // namespace

void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& argmax, const Pool2dGeometry& g) {
  if (y.numel() == 0) return;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "max_pool2d", [&] {
    max_pool_forward_kernel<<<grid_for(op.ctx, y.numel()), kThreads, 0, op.stream()>>>(
        x.data<scalar_t>(), y.data<scalar_t>(), argmax.data<int32_t>(), geo_of(g));
    DP_CUDA_CHECK_LAUNCH();
  });
}

void max_pool2d_backward(const Tensor& dy, const Tensor& argmax, Tensor& dx, const Pool2dGeometry& g) {
  if (dx.numel() == 0) return;
  OpScope op(dy);
  DP_CUDA_FLOAT_TYPES_BF16(dy.dtype(), "max_pool2d_backward", [&] {
    max_pool_backward_kernel<<<grid_for(op.ctx, dx.numel()), kThreads, 0, op.stream()>>>(
        dy.data<scalar_t>(), argmax.data<int32_t>(), dx.data<scalar_t>(), geo_of(g));
    DP_CUDA_CHECK_LAUNCH();
  });
}

void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeometry& g) {
  if (y.numel() == 0) return;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "avg_pool2d", [&] {
    using acc = acc_t<scalar_t>;
    const acc inv = acc(1) / static_cast<acc>(g.kernel * g.kernel);
    avg_pool_forward_kernel<<<grid_for(op.ctx, y.numel()), kThreads, 0, op.stream()>>>(
        x.data<scalar_t>(), y.data<scalar_t>(), geo_of(g), inv);
    DP_CUDA_CHECK_LAUNCH();
  });
}

void avg_pool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dGeometry& g) {
  if (dx.numel() == 0) return;
  OpScope op(dy);
  DP_CUDA_FLOAT_TYPES_BF16(dy.dtype(), "avg_pool2d_backward", [&] {
    using acc = acc_t<scalar_t>;
    const acc inv = acc(1) / static_cast<acc>(g.kernel * g.kernel);
    avg_pool_backward_kernel<<<grid_for(op.ctx, dx.numel()), kThreads, 0, op.stream()>>>(
        dy.data<scalar_t>(), dx.data<scalar_t>(), geo_of(g), inv);
    DP_CUDA_CHECK_LAUNCH();
  });
}

void global_avg_pool_forward(const Tensor& x, Tensor& y) {
  const int64_t planes = x.size(0) * x.size(1);
  if (planes == 0) return;
  const int64_t hw = x.numel() / planes;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "global_avg_pool", [&] {
    const int64_t warps_per_block = kThreads / 32;
    global_avg_forward_kernel<<<grid_for(op.ctx, planes, static_cast<int>(warps_per_block)), kThreads, 0,
                                op.stream()>>>(x.data<scalar_t>(), y.data<scalar_t>(), planes, hw);
    DP_CUDA_CHECK_LAUNCH();
  });
}

void global_avg_pool_backward(const Tensor& dy, Tensor& dx) {
  const int64_t planes = dx.size(0) * dx.size(1);
  if (dx.numel() == 0) return;
  const int64_t hw = dx.numel() / planes;
  OpScope op(dy);
  DP_CUDA_FLOAT_TYPES_BF16(dy.dtype(), "global_avg_pool_backward", [&] {
    using acc = acc_t<scalar_t>;
    const acc inv = acc(1) / static_cast<acc>(hw);
    global_avg_backward_kernel<<<grid_for(op.ctx, dx.numel()), kThreads, 0, op.stream()>>>(
        dy.data<scalar_t>(), dx.data<scalar_t>(), hw, dx.numel(), inv);
    DP_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace dp::cuda
