// Convolution as im2col + GEMM per group of images; float32 3×3 stride-1 layers with enough
// channels go to Winograd instead (winograd.h), float64 always stays here (the reference).
//
// Images are processed in groups of `b` (b·P·Q columns ≈ kGroupColumns, so the GEMM stays wide
// on small feature maps); groups run in parallel on dp's pool while OpenBLAS stays
// single-threaded. Weight gradients are reduced over a fixed number of image chunks summed in
// a fixed order, so dw is bit-identical whatever the thread count.
#include "kernels/conv2d.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "engine/thread_pool.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/type_dispatch.h"
#include "kernels/cpu/winograd.h"

namespace dp::kernels::cpu {

namespace {

// Target GEMM width (images × P·Q) per group. Measured on WRN CIFAR shapes: 64, 256 and 1024
// are within noise of each other single-threaded (~110 GFLOP/s per core, ~87% of OpenBLAS's
// large-GEMM rate); 256 keeps the im2col buffer (C·R·S × 256) near L2 size.
constexpr int64_t kGroupColumns = 256;
// dw is reduced over a number of image chunks fixed by the shape alone (thread-count
// independent): up to 16 (enough parallelism for 16 cores) while the partial buffers stay
// within ~128 MB and each chunk has at least 4 GEMM groups; at least 4 (or one per group).
constexpr int64_t kMaxWeightChunks = 16, kMinWeightChunks = 4;
constexpr int64_t kPartialBytes = int64_t{128} << 20;

bool is_pointwise(const Conv2dGeometry& g) {
  return g.r == 1 && g.s == 1 && g.stride == 1 && g.pad == 0;
}

int64_t images_per_group(const Conv2dGeometry& g) {
  return std::clamp<int64_t>(kGroupColumns / std::max<int64_t>(g.p * g.q, 1), 1, g.n);
}

// Valid output columns q for filter column s: those with 0 <= q·stride - pad + s < W.
inline void valid_range(int64_t s, int64_t stride, int64_t pad, int64_t w, int64_t q_count,
                        int64_t& q_lo, int64_t& q_hi) {
  int64_t first = pad - s;  // q·stride >= first
  q_lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  int64_t last = w - 1 + pad - s;  // q·stride <= last
  q_hi = last < 0 ? 0 : std::min(q_count, last / stride + 1);
  q_lo = std::min(q_lo, q_hi);
}

// col[(c·R + r)·S + s][p·Q + q] = x[c][p·stride - pad + r][q·stride - pad + s] (0 outside),
// written at column offset `col0` of rows with leading dimension `ld`.
// im2col for stride 2 (ResNet's stem and its downsampling convolutions): each input row is split
// once into its even and odd columns (of the zero-padded row), so that every filter column s reads
// a contiguous run, E[q + s/2] or O[q + s/2], instead of gathering every other element.
template <class T>
void im2col_stride2(const T* x, const Conv2dGeometry& g, T* col, int64_t ld, int64_t col0) {
  const int64_t H = g.h, W = g.w, P = g.p, Q = g.q, half = g.q + g.s / 2 + 1;
  T* even = scratch<T>(2, 2 * half);
  T* odd = even + half;
  for (int64_t c = 0; c < g.c; ++c) {
    const T* xc = x + c * H * W;
    for (int64_t r = 0; r < g.r; ++r) {
      T* rows = col + (c * g.r + r) * g.s * ld + col0;  // filter row r's S rows of col
      for (int64_t p = 0; p < P; ++p) {
        const int64_t h = p * 2 - g.pad + r;
        if (h < 0 || h >= H) {
          for (int64_t s = 0; s < g.s; ++s) std::fill_n(rows + s * ld + p * Q, Q, T(0));
          continue;
        }
        const T* src = xc + h * W;
        for (int64_t i = 0; i < half; ++i) {
          const int64_t w = 2 * i - g.pad;
          even[i] = w >= 0 && w < W ? src[w] : T(0);
          odd[i] = w + 1 >= 0 && w + 1 < W ? src[w + 1] : T(0);
        }
        for (int64_t s = 0; s < g.s; ++s) {
          const T* from = (s % 2 == 0 ? even : odd) + s / 2;
          std::copy(from, from + Q, rows + s * ld + p * Q);
        }
      }
    }
  }
}

template <class T>
void im2col(const T* x, const Conv2dGeometry& g, T* col, int64_t ld, int64_t col0) {
  if (g.stride == 2) {
    im2col_stride2(x, g, col, ld, col0);
    return;
  }
  const int64_t H = g.h, W = g.w, P = g.p, Q = g.q, st = g.stride;
  for (int64_t c = 0; c < g.c; ++c) {
    const T* xc = x + c * H * W;
    for (int64_t r = 0; r < g.r; ++r) {
      for (int64_t s = 0; s < g.s; ++s) {
        T* dst = col + ((c * g.r + r) * g.s + s) * ld + col0;
        int64_t q_lo, q_hi;
        valid_range(s, st, g.pad, W, Q, q_lo, q_hi);
        for (int64_t p = 0; p < P; ++p) {
          T* drow = dst + p * Q;
          const int64_t h = p * st - g.pad + r;
          if (h < 0 || h >= H) {
            std::fill(drow, drow + Q, T(0));
            continue;
          }
          const T* srow = xc + h * W - g.pad + s;
          for (int64_t q = 0; q < q_lo; ++q) drow[q] = T(0);
          if (st == 1) {
            for (int64_t q = q_lo; q < q_hi; ++q) drow[q] = srow[q];
          } else {
            for (int64_t q = q_lo; q < q_hi; ++q) drow[q] = srow[q * st];
          }
          for (int64_t q = q_hi; q < Q; ++q) drow[q] = T(0);
        }
      }
    }
  }
}

// The adjoint of im2col: dx (one image, overwritten) = sum of col entries per input pixel.
template <class T>
void col2im(const T* col, int64_t ld, int64_t col0, const Conv2dGeometry& g, T* dx) {
  const int64_t H = g.h, W = g.w, P = g.p, Q = g.q, st = g.stride;
  std::fill(dx, dx + g.c * H * W, T(0));
  for (int64_t c = 0; c < g.c; ++c) {
    T* xc = dx + c * H * W;
    for (int64_t r = 0; r < g.r; ++r) {
      for (int64_t s = 0; s < g.s; ++s) {
        const T* src = col + ((c * g.r + r) * g.s + s) * ld + col0;
        int64_t q_lo, q_hi;
        valid_range(s, st, g.pad, W, Q, q_lo, q_hi);
        for (int64_t p = 0; p < P; ++p) {
          const int64_t h = p * st - g.pad + r;
          if (h < 0 || h >= H) continue;
          const T* srow = src + p * Q;
          T* drow = xc + h * W - g.pad + s;
          if (st == 1) {
            for (int64_t q = q_lo; q < q_hi; ++q) drow[q] += srow[q];
          } else {
            for (int64_t q = q_lo; q < q_hi; ++q) drow[q * st] += srow[q];
          }
        }
      }
    }
  }
}

template <class T>
void forward_impl(const T* x, const T* w, const T* bias, T* y, const Conv2dGeometry& g) {
  const int64_t PQ = g.p * g.q, CRS = g.c * g.r * g.s, CHW = g.c * g.h * g.w, K = g.k;
  const int64_t b = is_pointwise(g) ? 1 : images_per_group(g);
  const int64_t groups = (g.n + b - 1) / b;
  parallel_for(0, groups, 1, [&](int64_t g0, int64_t g1) {
    for (int64_t grp = g0; grp < g1; ++grp) {
      const int64_t n0 = grp * b, nb = std::min(b, g.n - n0);
      if (is_pointwise(g)) {
        blas::gemm(false, false, K, PQ, CRS, T(1), w, CRS, x + n0 * CHW, PQ, T(0), y + n0 * K * PQ, PQ);
      } else {
        const int64_t ld = nb * PQ;
        T* col = scratch<T>(0, CRS * ld);
        for (int64_t i = 0; i < nb; ++i) im2col(x + (n0 + i) * CHW, g, col, ld, i * PQ);
        if (nb == 1) {
          blas::gemm(false, false, K, PQ, CRS, T(1), w, CRS, col, ld, T(0), y + n0 * K * PQ, PQ);
        } else {
          T* out = scratch<T>(1, K * ld);
          blas::gemm(false, false, K, ld, CRS, T(1), w, CRS, col, ld, T(0), out, ld);
          for (int64_t i = 0; i < nb; ++i)
            for (int64_t k = 0; k < K; ++k)
              std::memcpy(y + ((n0 + i) * K + k) * PQ, out + k * ld + i * PQ, sizeof(T) * PQ);
        }
      }
      if (bias != nullptr) {
        for (int64_t i = 0; i < nb; ++i)
          for (int64_t k = 0; k < K; ++k) {
            T* yk = y + ((n0 + i) * K + k) * PQ;
            const T bk = bias[k];
            for (int64_t j = 0; j < PQ; ++j) yk[j] += bk;
          }
      }
    }
  });
}

template <class T>
void backward_data_impl(const T* dy, const T* w, T* dx, const Conv2dGeometry& g) {
  const int64_t PQ = g.p * g.q, CRS = g.c * g.r * g.s, CHW = g.c * g.h * g.w, K = g.k;
  const int64_t b = is_pointwise(g) ? 1 : images_per_group(g);
  const int64_t groups = (g.n + b - 1) / b;
  parallel_for(0, groups, 1, [&](int64_t g0, int64_t g1) {
    for (int64_t grp = g0; grp < g1; ++grp) {
      const int64_t n0 = grp * b, nb = std::min(b, g.n - n0);
      if (is_pointwise(g)) {
        blas::gemm(true, false, CRS, PQ, K, T(1), w, CRS, dy + n0 * K * PQ, PQ, T(0), dx + n0 * CHW, PQ);
        continue;
      }
      const int64_t ld = nb * PQ;
      const T* dyg = dy + n0 * K * PQ;
      if (nb > 1) {  // gather dy of the group as [K, nb·PQ]
        T* gathered = scratch<T>(1, K * ld);
        for (int64_t i = 0; i < nb; ++i)
          for (int64_t k = 0; k < K; ++k)
            std::memcpy(gathered + k * ld + i * PQ, dy + ((n0 + i) * K + k) * PQ, sizeof(T) * PQ);
        dyg = gathered;
      }
      T* dcol = scratch<T>(0, CRS * ld);
      blas::gemm(true, false, CRS, ld, K, T(1), w, CRS, dyg, ld, T(0), dcol, ld);
      for (int64_t i = 0; i < nb; ++i) col2im(dcol, ld, i * PQ, g, dx + (n0 + i) * CHW);
    }
  });
}

template <class T>
void backward_weight_impl(const T* x, const T* dy, T* dw, const Conv2dGeometry& g) {
  const int64_t PQ = g.p * g.q, CRS = g.c * g.r * g.s, CHW = g.c * g.h * g.w, K = g.k;
  const int64_t b = is_pointwise(g) ? 1 : images_per_group(g);
  const int64_t groups = (g.n + b - 1) / b;
  const int64_t wsize = K * CRS;
  const int64_t by_memory = kPartialBytes / std::max<int64_t>(wsize * static_cast<int64_t>(sizeof(T)), 1);
  // At least 4 groups per chunk: fewer, longer accumulations cost ~10% per core on 8x8 maps.
  const int64_t chunks = std::clamp(std::min(groups / 4, by_memory), std::min(groups, kMinWeightChunks),
                                    kMaxWeightChunks);
  // Chunk 0 accumulates straight into dw; the others into partial buffers.
  std::unique_ptr<T[]> partial(chunks > 1 ? new T[static_cast<size_t>((chunks - 1) * wsize)] : nullptr);
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      T* acc = chunk == 0 ? dw : partial.get() + (chunk - 1) * wsize;
      const int64_t grp_begin = groups * chunk / chunks, grp_end = groups * (chunk + 1) / chunks;
      for (int64_t grp = grp_begin; grp < grp_end; ++grp) {
        const T beta = grp == grp_begin ? T(0) : T(1);
        const int64_t n0 = grp * b, nb = std::min(b, g.n - n0);
        if (is_pointwise(g)) {
          blas::gemm(false, true, K, CRS, PQ, T(1), dy + n0 * K * PQ, PQ, x + n0 * CHW, PQ, beta, acc, CRS);
          continue;
        }
        const int64_t ld = nb * PQ;
        const T* dyg = dy + n0 * K * PQ;
        if (nb > 1) {
          T* gathered = scratch<T>(1, K * ld);
          for (int64_t i = 0; i < nb; ++i)
            for (int64_t k = 0; k < K; ++k)
              std::memcpy(gathered + k * ld + i * PQ, dy + ((n0 + i) * K + k) * PQ, sizeof(T) * PQ);
          dyg = gathered;
        }
        T* col = scratch<T>(0, CRS * ld);
        for (int64_t i = 0; i < nb; ++i) im2col(x + (n0 + i) * CHW, g, col, ld, i * PQ);
        blas::gemm(false, true, K, CRS, ld, T(1), dyg, ld, col, ld, beta, acc, CRS);
      }
    }
  });
  if (chunks > 1) {
    parallel_for(0, wsize, 4096, [&](int64_t e0, int64_t e1) {
      for (int64_t c = 1; c < chunks; ++c) {
        const T* part = partial.get() + (c - 1) * wsize;
        for (int64_t e = e0; e < e1; ++e) dw[e] += part[e];
      }
    });
  }
}

template <class T>
void bias_grad_impl(const T* dy, T* db, const Conv2dGeometry& g) {
  const int64_t PQ = g.p * g.q, K = g.k;
  parallel_for(0, K, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      double acc = 0.0;
      for (int64_t n = 0; n < g.n; ++n) {
        const T* row = dy + (n * K + k) * PQ;
        T s = T(0);
        for (int64_t j = 0; j < PQ; ++j) s += row[j];
        acc += s;
      }
      db[k] = static_cast<T>(acc);
    }
  });
}

// Winograd's tile size for a float32 layer it suits, else 0 (im2col; float64 always: the
// finite-difference checks run there against the plain algorithm).
template <class T>
int winograd_tile(const Conv2dGeometry& g, winograd::Pass pass) {
  if constexpr (std::is_same_v<T, float>) return winograd::tile_size_for(g, pass);
  return 0;
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                    const Conv2dGeometry& g) {
  DP_CPU_FLOAT_TYPES(x.dtype(), "conv2d", [&] {
    if (const int tile = winograd_tile<scalar_t>(g, winograd::Pass::Forward)) {
      if constexpr (std::is_same_v<scalar_t, float>)
        winograd::forward(x.data<float>(), w.data<float>(), b.defined() ? b.data<float>() : nullptr,
                          y.data<float>(), g, tile);
    } else {
      forward_impl<scalar_t>(x.data<scalar_t>(), w.data<scalar_t>(), b.defined() ? b.data<scalar_t>() : nullptr,
                             y.data<scalar_t>(), g);
    }
  });
}

void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) {
  DP_CPU_FLOAT_TYPES(dy.dtype(), "conv2d_backward_data", [&] {
    if (const int tile = winograd_tile<scalar_t>(g, winograd::Pass::Data)) {
      if constexpr (std::is_same_v<scalar_t, float>)
        winograd::backward_data(dy.data<float>(), w.data<float>(), dx.data<float>(), g, tile);
    } else {
      backward_data_impl<scalar_t>(dy.data<scalar_t>(), w.data<scalar_t>(), dx.data<scalar_t>(), g);
    }
  });
}

void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,
                            const Conv2dGeometry& g) {
  DP_CPU_FLOAT_TYPES(dy.dtype(), "conv2d_backward_weight", [&] {
    if (const int tile = winograd_tile<scalar_t>(g, winograd::Pass::Weight)) {
      if constexpr (std::is_same_v<scalar_t, float>)
        winograd::backward_weight(x.data<float>(), dy.data<float>(), dw.data<float>(), g, tile);
    } else {
      backward_weight_impl<scalar_t>(x.data<scalar_t>(), dy.data<scalar_t>(), dw.data<scalar_t>(), g);
    }
    if (db.defined()) bias_grad_impl<scalar_t>(dy.data<scalar_t>(), db.data<scalar_t>(), g);
  });
}

}  // namespace dp::kernels::cpu
