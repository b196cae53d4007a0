// Pooling over NCHW planes, parallel over (image, channel) planes.
#include "kernels/pooling.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "engine/thread_pool.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/simd.h"
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

// ResNet's stem pool (3×3, stride 2) on one float plane, kLanes outputs of a row at once. Each
// input row is split once into its even and odd columns of the padded row (-inf outside the
// input), so that window q's three columns are E[q], O[q], E[q + 1]: contiguous loads instead of
// a gather. The same rule as window_max, lane by lane and without branches: rows in order,
// columns in order, strictly greater wins (the first maximum on ties); a padded -inf never wins,
// so `where` starts at the window's first valid position as there. Planes holding a NaN or an
// infinity return false before writing anything (the generic scan takes them: NaN propagation).
DP_VECTOR_CLONES bool max_pool_3x3s2_plane(const float* xp, const Pool2dGeometry& g, float* split, float* yp,
                                           int32_t* ap) {
  using namespace simd;
  const int64_t H = g.h, W = g.w, P = g.p, Q = g.q, pad = g.pad;
  const int64_t lanes_q = (Q + kLanes - 1) / kLanes * kLanes, half = lanes_q + kLanes, row = 2 * half;
  const float ninf = -std::numeric_limits<float>::infinity();
  float* padded = split + H * row;
  std::fill(padded, padded + row, ninf);
  uint32_t special = 0;  // an all-ones exponent (NaN or ±inf) somewhere in the plane
  for (int64_t h = 0; h < H; ++h) {
    const float* xr = xp + h * W;
    for (int64_t w = 0; w < W; ++w) {
      uint32_t bits;
      std::memcpy(&bits, xr + w, sizeof bits);
      special |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    std::memcpy(padded + pad, xr, sizeof(float) * W);
    float* even = split + h * row;
    float* odd = even + half;
    for (int64_t i = 0; i < half; ++i) {
      even[i] = padded[2 * i];
      odd[i] = padded[2 * i + 1];
    }
  }
  if (special != 0) return false;
  IVec iota;
  for (int l = 0; l < kLanes; ++l) iota[l] = l;
  for (int64_t p = 0; p < P; ++p) {
    const int64_t top = p * 2 - pad, h0 = std::max<int64_t>(top, 0), h1 = std::min(top + 3, H);
    for (int64_t q0 = 0; q0 < Q; q0 += kLanes) {
      const IVec q = iota + static_cast<int32_t>(q0), left = q * 2 - static_cast<int32_t>(pad);
      IVec where = static_cast<int32_t>(h0 * W) + (left < 0 ? 0 : left);
      Vec best = ninf - Vec{};
      for (int64_t h = h0; h < h1; ++h) {
        const float* even = split + h * row + q0;
        const float* odd = even + half;
        const IVec at = static_cast<int32_t>(h * W) + left;
        const Vec cand[3] = {load(even), load(odd), load(even + 1)};
        for (int s = 0; s < 3; ++s) {
          const IVec wins = cand[s] > best;
          best = wins ? cand[s] : best;
          where = wins ? at + s : where;
        }
      }
      const int64_t count = std::min<int64_t>(kLanes, Q - q0);
      if (count == kLanes) {
        store(yp + p * Q + q0, best);
        store(ap + p * Q + q0, where);
      } else {
        for (int64_t l = 0; l < count; ++l) yp[p * Q + q0 + l] = best[l], ap[p * Q + q0 + l] = where[l];
      }
    }
  }
  return true;
}

// Whether the vectorised pool took the plane; false: the caller runs the generic scan.
bool max_pool_vectorised(const float* xp, const Pool2dGeometry& g, float* yp, int32_t* ap) {
  if (g.kernel != 3 || g.stride != 2 || g.pad > 1) return false;
  const int64_t half = ((g.q + simd::kLanes - 1) / simd::kLanes + 1) * simd::kLanes;
  return max_pool_3x3s2_plane(xp, g, scratch<float>(0, (g.h + 1) * 2 * half), yp, ap);
}
bool max_pool_vectorised(const double*, const Pool2dGeometry&, double*, int32_t*) { return false; }

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
        if (max_pool_vectorised(xp, g, py + plane * PQ, pa + plane * PQ)) continue;
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
