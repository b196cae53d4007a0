// CUDA pooling over NCHW or channels-last NHWC (contract: kernels/pooling.h): one thread per
// output for the forward passes; the backward passes gather (one thread per input element,
// summing the windows that cover it in the CPU's order) instead of scattering with atomics, so
// they are deterministic. Each kernel is templated on the format (CL = channels-last), which only
// changes the index math (Planes below): threads walk the flat memory index, so for NHWC
// neighbouring threads handle neighbouring channels of one pixel and read coalesced.
// The format comes from the activation (x forward, dx backward); y, dy and argmax are laid out
// like it, or in the coinciding Contiguous format (P·Q == 1), whose bytes are the same.
#include <cfloat>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/pooling.h"

namespace dp::kernels::cuda {

namespace {

using detail::grid_for;
using detail::kThreads;
using detail::OpScope;
using detail::acc_t;
using detail::from_acc;
using detail::to_acc;

struct Geo {
  int64_t planes, c, h, w, k, s, pad, p, q;
};

Geo geo_of(const Pool2dGeometry& g) { return {g.n * g.c, g.c, g.h, g.w, g.kernel, g.stride, g.pad, g.p, g.q}; }

// Where plane (n, ch) of an [N, C, rows, cols] tensor lives. NCHW: plane n·C + ch is one block
// of area = rows·cols elements, pixels adjacent. NHWC: each pixel of image n holds C channels in
// a row, so the plane starts at n·area·C + ch and its pixels are C apart. NCHW is the NHWC
// formulas with one channel per image (img := n·C + ch): the channel split compiles away and the
// NCHW kernels do the same divisions as before channels-last existed.
template <bool CL>
struct Planes {
  int64_t c;  // channels (unused for NCHW)
  __device__ __forceinline__ int64_t stride() const { return CL ? c : 1; }  // between pixels
  // Flat index i of a tensor with `area` pixels per plane -> plane (img, ch) and pixel.
  __device__ __forceinline__ void split(int64_t i, int64_t area, int64_t& img, int64_t& ch, int64_t& pix) const {
    if constexpr (CL) {
      ch = i % c;
      i /= c;
    } else {
      ch = 0;
    }
    img = i / area;
    pix = i - img * area;
  }
  // First element of plane (img, ch) in a tensor with `area` pixels per plane.
  __device__ __forceinline__ int64_t origin(int64_t img, int64_t ch, int64_t area) const {
    return CL ? img * area * c + ch : img * area;
  }
};

// Calls f(std::true_type{}) for channels-last, f(std::false_type{}) for NCHW: the body picks
// the kernel instance with `constexpr bool CL = decltype(cl)::value`.
template <class F>
void by_format(bool channels_last, F&& f) {
  if (channels_last)
    f(std::true_type{});
  else
    f(std::false_type{});
}

// Output rows (or columns) whose window covers input row h: [first, last].
__device__ __forceinline__ void covering(int64_t h, int64_t k, int64_t s, int64_t pad, int64_t p_count,
                                         int64_t& first, int64_t& last) {
  int64_t hi = h + pad;                      // window p covers h when p·s <= hi < p·s + k
  int64_t lo = hi - k + 1;
  first = lo <= 0 ? 0 : (lo + s - 1) / s;
  last = min(hi / s, p_count - 1);
}

template <class T, bool CL>
__global__ void max_pool_forward_kernel(const T* x, T* y, int32_t* argmax, Geo g) {
  const Planes<CL> fm{g.c};
  const int64_t st = fm.stride();
  DP_GRID_STRIDE(i, g.planes * g.p * g.q) {
    int64_t img, ch, pix;
    fm.split(i, g.p * g.q, img, ch, pix);
    const int64_t q = pix % g.q, p = pix / g.q;
    const T* xp = x + fm.origin(img, ch, g.h * g.w);
    const int64_t h0 = max(p * g.s - g.pad, int64_t{0}), h1 = min(p * g.s - g.pad + g.k, g.h);
    const int64_t w0 = max(q * g.s - g.pad, int64_t{0}), w1 = min(q * g.s - g.pad + g.k, g.w);
    acc_t<T> best = -INFINITY;
    int64_t where = h0 * g.w + w0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) {
        const acc_t<T> v = to_acc(xp[(h * g.w + w) * st]);
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

template <class T, bool CL>
__global__ void max_pool_backward_kernel(const T* dy, const int32_t* argmax, T* dx, Geo g) {
  const Planes<CL> fm{g.c};
  const int64_t st = fm.stride();
  DP_GRID_STRIDE(i, g.planes * g.h * g.w) {
    int64_t img, ch, pix;
    fm.split(i, g.h * g.w, img, ch, pix);
    const int64_t w = pix % g.w, h = pix / g.w;
    const int32_t here = static_cast<int32_t>(pix);  // h·W + w, what argmax stores
    int64_t p0, p1, q0, q1;
    covering(h, g.k, g.s, g.pad, g.p, p0, p1);
    covering(w, g.k, g.s, g.pad, g.q, q0, q1);
    const int64_t base = fm.origin(img, ch, g.p * g.q);
    acc_t<T> acc = 0;
    for (int64_t p = p0; p <= p1; ++p)
      for (int64_t q = q0; q <= q1; ++q) {
        const int64_t o = base + (p * g.q + q) * st;
        if (argmax[o] == here) acc += to_acc(dy[o]);
      }
    dx[i] = from_acc<T>(acc);
  }
}

// count_include_pad in floor mode: the divisor is always kernel².
template <class T, bool CL>
__global__ void avg_pool_forward_kernel(const T* x, T* y, Geo g, acc_t<T> inv) {
  const Planes<CL> fm{g.c};
  const int64_t st = fm.stride();
  DP_GRID_STRIDE(i, g.planes * g.p * g.q) {
    int64_t img, ch, pix;
    fm.split(i, g.p * g.q, img, ch, pix);
    const int64_t q = pix % g.q, p = pix / g.q;
    const T* xp = x + fm.origin(img, ch, g.h * g.w);
    const int64_t h0 = max(p * g.s - g.pad, int64_t{0}), h1 = min(p * g.s - g.pad + g.k, g.h);
    const int64_t w0 = max(q * g.s - g.pad, int64_t{0}), w1 = min(q * g.s - g.pad + g.k, g.w);
    acc_t<T> acc = 0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) acc += to_acc(xp[(h * g.w + w) * st]);
    y[i] = from_acc<T>(acc * inv);
  }
}

template <class T, bool CL>
__global__ void avg_pool_backward_kernel(const T* dy, T* dx, Geo g, acc_t<T> inv) {
  const Planes<CL> fm{g.c};
  const int64_t st = fm.stride();
  DP_GRID_STRIDE(i, g.planes * g.h * g.w) {
    int64_t img, ch, pix;
    fm.split(i, g.h * g.w, img, ch, pix);
    const int64_t w = pix % g.w, h = pix / g.w;
    int64_t p0, p1, q0, q1;
    covering(h, g.k, g.s, g.pad, g.p, p0, p1);
    covering(w, g.k, g.s, g.pad, g.q, q0, q1);
    const int64_t base = fm.origin(img, ch, g.p * g.q);
    acc_t<T> acc = 0;
    for (int64_t p = p0; p <= p1; ++p)
      for (int64_t q = q0; q <= q1; ++q) acc += to_acc(dy[base + (p * g.q + q) * st]) * inv;
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

// Channels-last: one thread per (n, c) sums its hw pixels in order; neighbouring threads take
// neighbouring channels, so every step of the loop is one coalesced read across the warp.
template <class T>
__global__ void global_avg_forward_nhwc_kernel(const T* x, T* y, int64_t planes, int64_t c, int64_t hw) {
  DP_GRID_STRIDE(i, planes) {
    const int64_t n = i / c, ch = i - n * c;
    const T* xp = x + n * hw * c + ch;
    double acc = 0.0;
    for (int64_t k = 0; k < hw; ++k) acc += static_cast<double>(to_acc(xp[k * c]));
    y[i] = from_acc<T>(acc / static_cast<double>(hw));
  }
}

// dy is [N, C]: dx element i belongs to plane i / hw (NCHW) or to (i / (hw·C), i % C) (NHWC).
template <class T, bool CL>
__global__ void global_avg_backward_kernel(const T* dy, T* dx, int64_t c, int64_t hw, int64_t n, acc_t<T> inv) {
  const Planes<CL> fm{c};
  DP_GRID_STRIDE(i, n) {
    int64_t img, ch, pix;
    fm.split(i, hw, img, ch, pix);
    dx[i] = from_acc<T>(to_acc(dy[fm.origin(img, ch, 1)]) * inv);
  }
}

}  // namespace

void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& argmax, const Pool2dGeometry& g) {
  if (y.numel() == 0) return;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "max_pool2d", [&] {
    by_format(x.is_channels_last(), [&](auto cl) {
      constexpr bool CL = decltype(cl)::value;
      max_pool_forward_kernel<scalar_t, CL><<<grid_for(op.ctx, y.numel()), kThreads, 0, op.stream()>>>(
          x.data<scalar_t>(), y.data<scalar_t>(), argmax.data<int32_t>(), geo_of(g));
      DP_CUDA_CHECK_LAUNCH();
    });
  });
}

void max_pool2d_backward(const Tensor& dy, const Tensor& argmax, Tensor& dx, const Pool2dGeometry& g) {
  if (dx.numel() == 0) return;
  OpScope op(dy);
  DP_CUDA_FLOAT_TYPES_BF16(dy.dtype(), "max_pool2d_backward", [&] {
    by_format(dx.is_channels_last(), [&](auto cl) {
      constexpr bool CL = decltype(cl)::value;
      max_pool_backward_kernel<scalar_t, CL><<<grid_for(op.ctx, dx.numel()), kThreads, 0, op.stream()>>>(
          dy.data<scalar_t>(), argmax.data<int32_t>(), dx.data<scalar_t>(), geo_of(g));
      DP_CUDA_CHECK_LAUNCH();
    });
  });
}

void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeometry& g) {
  if (y.numel() == 0) return;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "avg_pool2d", [&] {
    using acc = acc_t<scalar_t>;
    const acc inv = acc(1) / static_cast<acc>(g.kernel * g.kernel);
    by_format(x.is_channels_last(), [&](auto cl) {
      constexpr bool CL = decltype(cl)::value;
      avg_pool_forward_kernel<scalar_t, CL><<<grid_for(op.ctx, y.numel()), kThreads, 0, op.stream()>>>(
          x.data<scalar_t>(), y.data<scalar_t>(), geo_of(g), inv);
      DP_CUDA_CHECK_LAUNCH();
    });
  });
}

void avg_pool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dGeometry& g) {
  if (dx.numel() == 0) return;
  OpScope op(dy);
  DP_CUDA_FLOAT_TYPES_BF16(dy.dtype(), "avg_pool2d_backward", [&] {
    using acc = acc_t<scalar_t>;
    const acc inv = acc(1) / static_cast<acc>(g.kernel * g.kernel);
    by_format(dx.is_channels_last(), [&](auto cl) {
      constexpr bool CL = decltype(cl)::value;
      avg_pool_backward_kernel<scalar_t, CL><<<grid_for(op.ctx, dx.numel()), kThreads, 0, op.stream()>>>(
          dy.data<scalar_t>(), dx.data<scalar_t>(), geo_of(g), inv);
      DP_CUDA_CHECK_LAUNCH();
    });
  });
}

void global_avg_pool_forward(const Tensor& x, Tensor& y) {
  const int64_t planes = x.size(0) * x.size(1);
  if (planes == 0) return;
  const int64_t hw = x.numel() / planes;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "global_avg_pool", [&] {
    if (x.is_channels_last()) {
      global_avg_forward_nhwc_kernel<<<grid_for(op.ctx, planes), kThreads, 0, op.stream()>>>(
          x.data<scalar_t>(), y.data<scalar_t>(), planes, x.size(1), hw);
      DP_CUDA_CHECK_LAUNCH();
      return;
    }
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
    by_format(dx.is_channels_last(), [&](auto cl) {
      constexpr bool CL = decltype(cl)::value;
      global_avg_backward_kernel<scalar_t, CL><<<grid_for(op.ctx, dx.numel()), kThreads, 0, op.stream()>>>(
          dy.data<scalar_t>(), dx.data<scalar_t>(), dx.size(1), hw, dx.numel(), inv);
      DP_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace dp::kernels::cuda
