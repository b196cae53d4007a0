// Pooling over NCHW planes, parallel over (image, channel) planes.
#include "kernels/pooling.h"

#include <algorithm>
#include <limits>

#include "engine/thread_pool.h"
#include "kernels/cpu/type_dispatch.h"

namespace dp::kernels::cpu {

namespace {

int64_t plane_grain(int64_t plane_size) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(plane_size, 1)); }

// Calls body(p, q, h0, h1, w0, w1) for every output position (p, q) of one plane with its
// input window [h0, h1) × [w0, w1), clipped to the unpadded input.
template <class Body>
void for_each_window(const Pool2dGeometry& g, Body&& body) {
  for (int64_t p = 0; p < g.p; ++p) {
    const int64_t h0 = std::max<int64_t>(p * g.stride - g.pad, 0);
    const int64_t h1 = std::min(p * g.stride - g.pad + g.kernel, g.h);
    for (int64_t q = 0; q < g.q; ++q) {
      const int64_t w0 = std::max<int64_t>(q * g.stride - g.pad, 0);
      const int64_t w1 = std::min(q * g.stride - g.pad + g.kernel, g.w);
      body(p, q, h0, h1, w0, w1);
    }
  }
}

// The maximum of rows [h0, h0 + rows) × columns [w0, w0 + cols) and its index: strict, so the
// first maximum wins; a NaN wins and ends the scan (it propagates). Fixed > 0: rows = cols = Fixed.
template <int Fixed, class T>
inline void window_max(const T* xp, int64_t width, int64_t h0, int64_t rows, int64_t w0, int64_t cols, T& best,
                       int64_t& where) {
  if constexpr (Fixed > 0) rows = cols = Fixed;
  for (int64_t h = h0; h < h0 + rows; ++h)
    for (int64_t w = w0; w < w0 + cols; ++w) {
      const T v = xp[h * width + w];
      if (v > best || v != v) {
        best = v;
        where = h * width + w;
        if (v != v) return;
      }
    }
}

}  // namespace

void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& argmax, const Pool2dGeometry& g) {
  DP_CPU_FLOAT_TYPES(x.dtype(), "max_pool2d", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    int32_t* pa = argmax.data<int32_t>();
    const int64_t HW = g.h * g.w, PQ = g.p * g.q;
    parallel_for(0, g.n * g.c, plane_grain(HW), [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) {
        const scalar_t* xp = px + plane * HW;
        for_each_window(g, [&](int64_t p, int64_t q, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
          scalar_t best = -std::numeric_limits<scalar_t>::infinity();
          int64_t where = h0 * g.w + w0;
          // ResNet's 3×3 pool: whole windows with constant bounds (unrolled), the rest generic.
          if (g.kernel == 3 && h1 - h0 == 3 && w1 - w0 == 3) window_max<3>(xp, g.w, h0, 3, w0, 3, best, where);
          else window_max<0>(xp, g.w, h0, h1 - h0, w0, w1 - w0, best, where);
          py[plane * PQ + p * g.q + q] = best;
          pa[plane * PQ + p * g.q + q] = static_cast<int32_t>(where);
        });
      }
    });
  });
}

void max_pool2d_backward(const Tensor& dy, const Tensor& argmax, Tensor& dx, const Pool2dGeometry& g) {
  DP_CPU_FLOAT_TYPES(dy.dtype(), "max_pool2d_backward", [&] {
    const scalar_t* pdy = dy.data<scalar_t>();
    const int32_t* pa = argmax.data<int32_t>();
    scalar_t* pdx = dx.data<scalar_t>();
    const int64_t HW = g.h * g.w, PQ = g.p * g.q;
    parallel_for(0, g.n * g.c, plane_grain(HW), [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) {
        scalar_t* dxp = pdx + plane * HW;
        std::fill(dxp, dxp + HW, scalar_t(0));
        for (int64_t i = 0; i < PQ; ++i) dxp[pa[plane * PQ + i]] += pdy[plane * PQ + i];
      }
    });
  });
}

// count_include_pad = true in floor mode: every window lies inside the padded input, so the
// divisor is always kernel².
void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeometry& g) {
  DP_CPU_FLOAT_TYPES(x.dtype(), "avg_pool2d", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    const int64_t HW = g.h * g.w, PQ = g.p * g.q;
    const scalar_t inv = scalar_t(1) / static_cast<scalar_t>(g.kernel * g.kernel);
    parallel_for(0, g.n * g.c, plane_grain(HW), [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) {
        const scalar_t* xp = px + plane * HW;
        for_each_window(g, [&](int64_t p, int64_t q, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
          scalar_t acc = 0;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) acc += xp[h * g.w + w];
          py[plane * PQ + p * g.q + q] = acc * inv;
        });
      }
    });
  });
}

void avg_pool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dGeometry& g) {
  DP_CPU_FLOAT_TYPES(dy.dtype(), "avg_pool2d_backward", [&] {
    const scalar_t* pdy = dy.data<scalar_t>();
    scalar_t* pdx = dx.data<scalar_t>();
    const int64_t HW = g.h * g.w, PQ = g.p * g.q;
    const scalar_t inv = scalar_t(1) / static_cast<scalar_t>(g.kernel * g.kernel);
    parallel_for(0, g.n * g.c, plane_grain(HW), [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) {
        scalar_t* dxp = pdx + plane * HW;
        std::fill(dxp, dxp + HW, scalar_t(0));
        for_each_window(g, [&](int64_t p, int64_t q, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
          const scalar_t v = pdy[plane * PQ + p * g.q + q] * inv;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) dxp[h * g.w + w] += v;
        });
      }
    });
  });
}

void global_avg_pool_forward(const Tensor& x, Tensor& y) {
  const int64_t planes = x.size(0) * x.size(1), HW = x.numel() / std::max<int64_t>(planes, 1);
  DP_CPU_FLOAT_TYPES(x.dtype(), "global_avg_pool", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    parallel_for(0, planes, plane_grain(HW), [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) {
        const scalar_t* xp = px + plane * HW;
        double acc = 0.0;
        for (int64_t i = 0; i < HW; ++i) acc += xp[i];
        py[plane] = static_cast<scalar_t>(acc / static_cast<double>(HW));
      }
    });
  });
}

void global_avg_pool_backward(const Tensor& dy, Tensor& dx) {
  const int64_t planes = dx.size(0) * dx.size(1), HW = dx.numel() / std::max<int64_t>(planes, 1);
  DP_CPU_FLOAT_TYPES(dy.dtype(), "global_avg_pool_backward", [&] {
    const scalar_t* pdy = dy.data<scalar_t>();
    scalar_t* pdx = dx.data<scalar_t>();
    const scalar_t inv = scalar_t(1) / static_cast<scalar_t>(HW);
    parallel_for(0, planes, plane_grain(HW), [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) std::fill(pdx + plane * HW, pdx + (plane + 1) * HW, pdy[plane] * inv);
    });
  });
}

}  // namespace dp::kernels::cpu
