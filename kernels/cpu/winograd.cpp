// Winograd F(m×m, 3×3) convolution on the CPU; see winograd.h for the algorithm and contract.
//
// Data layout per block of Tb tiles (Tb a multiple of kLanes, fixed by the shape):
//   V[ξ][c][t]  transformed input tiles   (ξ < α², α = m + 2)
//   M[ξ][k][t]  products U[ξ]·V[ξ]         (or, for the weight gradient, A dy A^T)
//   U[ξ][k][c]  transformed filters
// The transforms run on kLanes tiles at once (GCC vector extensions: AVX-512, AVX2 or SSE
// code, chosen at load time by target_clones, kernels/cpu/simd.h); the (m+2)² products are our
// GEMM micro-kernel (winograd_gemm.h), the weight gradient's OpenBLAS GEMMs.
#include "kernels/cpu/winograd.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "engine/thread_pool.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/winograd_gemm.h"

namespace dp::kernels::cpu::winograd {

namespace {

using simd::kLanes;
using simd::load;
using simd::store;
using simd::Vec;

constexpr int64_t round_up(int64_t n, int64_t to) { return (n + to - 1) / to * to; }

// The 1-D transforms of F(m, 3) (Lavin & Gray's matrices), each applied as out = T·in with
// strides, so that a 2-D transform T·X·T^T is one pass down the columns and one along the rows.
//   input:          α → α   B^T
//   output:         α → m   A^T
//   output_adjoint: m → α   A      (the weight gradient's view of dy)
//   filter:         3 → α   G
//   filter_adjoint: α → 3   G^T
template <int M>
struct F3;

template <>
struct F3<2> {
  static constexpr int kAlpha = 4;
  template <class V>
  static void input(const V* d, int ds, V* o, int os) {
    const V d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds];
    o[0] = d0 - d2;
    o[os] = d1 + d2;
    o[2 * os] = d2 - d1;
    o[3 * os] = d1 - d3;
  }
  template <class V>
  static void output(const V* m, int ms, V* o, int os) {
    const V m0 = m[0], m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms];
    o[0] = m0 + m1 + m2;
    o[os] = m1 - m2 - m3;
  }
  template <class V>
  static void output_adjoint(const V* y, int ys, V* o, int os) {
    const V y0 = y[0], y1 = y[ys];
    o[0] = y0;
    o[os] = y0 + y1;
    o[2 * os] = y0 - y1;
    o[3 * os] = -y1;
  }
  template <class V>
  static void filter(const V* g, int gs, V* o, int os) {
    const V g0 = g[0], g1 = g[gs], g2 = g[2 * gs];
    o[0] = g0;
    o[os] = (g0 + g1 + g2) * 0.5f;
    o[2 * os] = (g0 - g1 + g2) * 0.5f;
    o[3 * os] = g2;
  }
  template <class V>
  static void filter_adjoint(const V* u, int us, V* o, int os) {
    const V u0 = u[0], u1 = u[us], u2 = u[2 * us], u3 = u[3 * us];
    o[0] = u0 + (u1 + u2) * 0.5f;
    o[os] = (u1 - u2) * 0.5f;
    o[2 * os] = (u1 + u2) * 0.5f + u3;
  }
};

template <>
struct F3<4> {
  static constexpr int kAlpha = 6;
  template <class V>
  static void input(const V* d, int ds, V* o, int os) {
    const V d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds];
    o[0] = (d0 * 4.0f - d2 * 5.0f) + d4;
    o[os] = (d3 + d4) - (d1 + d2) * 4.0f;
    o[2 * os] = (d4 - d3) + (d1 - d2) * 4.0f;
    o[3 * os] = (d4 - d2) + (d3 - d1) * 2.0f;
    o[4 * os] = (d4 - d2) + (d1 - d3) * 2.0f;
    o[5 * os] = (d1 * 4.0f - d3 * 5.0f) + d5;
  }
  template <class V>
  static void output(const V* m, int ms, V* o, int os) {
    const V m0 = m[0], m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms], m4 = m[4 * ms], m5 = m[5 * ms];
    const V s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
    o[0] = m0 + s12 + s34;
    o[os] = d12 + d34 * 2.0f;
    o[2 * os] = s12 + s34 * 4.0f;
    o[3 * os] = d12 + d34 * 8.0f + m5;
  }
  template <class V>
  static void output_adjoint(const V* y, int ys, V* o, int os) {
    const V y0 = y[0], y1 = y[ys], y2 = y[2 * ys], y3 = y[3 * ys];
    const V e = y0 + y2, e4 = y0 + y2 * 4.0f;
    o[0] = y0;
    o[os] = e + (y1 + y3);
    o[2 * os] = e - (y1 + y3);
    o[3 * os] = e4 + (y1 * 2.0f + y3 * 8.0f);
    o[4 * os] = e4 - (y1 * 2.0f + y3 * 8.0f);
    o[5 * os] = y3;
  }
  template <class V>
  static void filter(const V* g, int gs, V* o, int os) {
    const V g0 = g[0], g1 = g[gs], g2 = g[2 * gs];
    o[0] = g0 * 0.25f;
    o[os] = (g0 + g1 + g2) * (-1.0f / 6);
    o[2 * os] = (g0 - g1 + g2) * (-1.0f / 6);
    o[3 * os] = g0 * (1.0f / 24) + g1 * (1.0f / 12) + g2 * (1.0f / 6);
    o[4 * os] = g0 * (1.0f / 24) - g1 * (1.0f / 12) + g2 * (1.0f / 6);
    o[5 * os] = g2;
  }
  template <class V>
  static void filter_adjoint(const V* u, int us, V* o, int os) {
    const V u0 = u[0], u1 = u[us], u2 = u[2 * us], u3 = u[3 * us], u4 = u[4 * us], u5 = u[5 * us];
    o[0] = u0 * 0.25f - (u1 + u2) * (1.0f / 6) + (u3 + u4) * (1.0f / 24);
    o[os] = (u2 - u1) * (1.0f / 6) + (u3 - u4) * (1.0f / 12);
    o[2 * os] = (u3 + u4 - u1 - u2) * (1.0f / 6) + u5;
  }
};

// out[OUT][OUT] = T · in[IN][IN] · T^T for a 1-D transform T: IN → OUT.
template <int IN, int OUT, class V, class OneD>
inline void transform_2d(const V* in, V* out, OneD one_d) {
  V tmp[OUT * IN];
  for (int b = 0; b < IN; ++b) one_d(in + b, IN, tmp + b, IN);        // columns
  for (int i = 0; i < OUT; ++i) one_d(tmp + i * IN, 1, out + i * OUT, 1);  // rows
}

// Where the tiles of the whole batch lie: tile t is image t / per_image, tile row
// (t % per_image) / cols, tile column (t % per_image) % cols.
struct Tiling {
  int m, alpha;
  int64_t rows, cols, per_image, total;
  int64_t block;    // tiles per block (a multiple of kLanes; the GEMMs' column count)
  int64_t blocks;
};

// Tiles per block: the block's V and M (α²·(C+K)·block floats) stay within ~4 MB, so a block's
// GEMMs run from L2/L3; at least 32 tiles so the GEMMs stay wide, at most 512.
constexpr int64_t kBlockFloats = int64_t{1} << 20;

Tiling make_tiling(const Conv2dGeometry& g, int m) {
  Tiling t;
  t.m = m;
  t.alpha = m + 2;
  t.rows = (g.p + m - 1) / m;
  t.cols = (g.q + m - 1) / m;
  t.per_image = t.rows * t.cols;
  t.total = g.n * t.per_image;
  const int64_t a2 = int64_t{t.alpha} * t.alpha;
  int64_t block = kBlockFloats / (a2 * (g.c + g.k));
  block = std::clamp<int64_t>(block, 32, 512) / kLanes * kLanes;
  block = std::min(block, round_up(t.total, kLanes));
  t.block = block;
  t.blocks = (t.total + block - 1) / block;
  return t;
}

// Lane l of a group of kLanes tiles (the output transform's): the tile's image and top-left corner
// in the output; lanes past the block's last tile are invalid. Runs: the group's valid lanes cut into runs of neighbouring tiles in one tile row (lane0 ..
// lane0 + lanes), whose output rows are contiguous in y.
struct LaneTiles {
  int64_t image[kLanes], row0[kLanes], col0[kLanes];
  bool valid[kLanes];
  int runs;
  int run_lane0[kLanes], run_lanes[kLanes];
};

// The lane groups of the block of tiles [first, first + count), decoded once per block.
void decode_lanes(const Tiling& t, int64_t first, int64_t count, std::vector<LaneTiles>& groups) {
  groups.resize(static_cast<size_t>((count + kLanes - 1) / kLanes));
  for (size_t grp = 0; grp < groups.size(); ++grp) {
    LaneTiles& lanes = groups[grp];
    for (int l = 0; l < kLanes; ++l) {
      const int64_t offset = static_cast<int64_t>(grp) * kLanes + l, tile = first + offset;
      lanes.valid[l] = offset < count;
      const int64_t in_image = lanes.valid[l] ? tile % t.per_image : 0;
      lanes.image[l] = lanes.valid[l] ? tile / t.per_image : 0;
      lanes.row0[l] = in_image / t.cols * t.m;
      lanes.col0[l] = in_image % t.cols * t.m;
    }
    lanes.runs = 0;
    for (int l = 0; l < kLanes && lanes.valid[l]; ++l) {
      const bool extends = l > 0 && lanes.image[l] == lanes.image[l - 1] && lanes.row0[l] == lanes.row0[l - 1] &&
                           lanes.col0[l] == lanes.col0[l - 1] + t.m;
      if (extends) {
        ++lanes.run_lanes[lanes.runs - 1];
      } else {
        lanes.run_lane0[lanes.runs] = l;
        lanes.run_lanes[lanes.runs++] = 1;
      }
    }
  }
}

// The run of neighbouring tiles in one tile row that starts at `tile`, among the block's tiles
// [first, first + count). (A plain function, not a loop taking a lambda: a lambda's body would
// not be compiled for the caller's target_clones target.)
struct Run {
  int64_t image, ty, tx, length, offset;  // image, tile row, first tile column, tiles, offset in the block
};
inline Run run_at(const Tiling& t, int64_t first, int64_t count, int64_t tile) {
  const int64_t in_image = tile % t.per_image, tx = in_image % t.cols;
  return {tile / t.per_image, in_image / t.cols, tx, std::min(t.cols - tx, first + count - tile), tile - first};
}

// (even, odd) = the even and odd elements of the 2·kLanes values a, b.
__attribute__((always_inline)) inline void deinterleave(const Vec& a, const Vec& b, Vec& even, Vec& odd) {
  even = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  odd = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}
// (lo, hi) = x[0], y[0], x[1], y[1], ...: the inverse of deinterleave.
__attribute__((always_inline)) inline void interleave(const Vec& x, const Vec& y, Vec& lo, Vec& hi) {
  lo = __builtin_shufflevector(x, y, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  hi = __builtin_shufflevector(x, y, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}

// phase[r][l] = p[l·S + r] for r < S (S = 2 or 4): the S phases of S·kLanes floats, as vectors.
template <int S>
__attribute__((always_inline)) inline void split_phases(const float* p, Vec* phase) {
  if constexpr (S == 2) {
    deinterleave(load(p), load(p + kLanes), phase[0], phase[1]);
  } else {
    static_assert(S == 4);
    Vec e01, o01, e23, o23;
    deinterleave(load(p), load(p + kLanes), e01, o01);
    deinterleave(load(p + 2 * kLanes), load(p + 3 * kLanes), e23, o23);
    deinterleave(e01, e23, phase[0], phase[2]);
    deinterleave(o01, o23, phase[1], phase[3]);
  }
}

// p[l·S + r] = phase[r][l] + b: the inverse of split_phases (plus a constant).
template <int S>
__attribute__((always_inline)) inline void merge_phases(const Vec* phase, float b, float* p) {
  Vec out[S];
  if constexpr (S == 2) {
    interleave(phase[0] + b, phase[1] + b, out[0], out[1]);
  } else {
    static_assert(S == 4);
    Vec e01, e23, o01, o23;
    interleave(phase[0] + b, phase[2] + b, e01, e23);
    interleave(phase[1] + b, phase[3] + b, o01, o23);
    interleave(e01, o01, out[0], out[1]);
    interleave(e23, o23, out[2], out[3]);
  }
  for (int i = 0; i < S; ++i) store(p + i * kLanes, out[i]);
}

// dst[0, n) = src[0, n) for short runs (< a few vectors). A plain loop: GCC expands a memcpy of
// variable size into `rep movsq`, whose start-up costs more than these copies.
__attribute__((always_inline)) inline void copy_short(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

// Stores v at the `n` < kLanes columns at dst of a row that has room for a whole vector when
// `room` (the columns past n are rewritten later or unused), else its first n lanes.
__attribute__((always_inline)) inline void store_partial(float* dst, const Vec& v, int64_t n, bool room) {
  if (room) store(dst, v);
  else copy_short(dst, reinterpret_cast<const float*>(&v), n);
}

// Zero V or dM's columns [count, round_up(count, kLanes)) of rows [r0, r1) (of `rows` per ξ).
inline void zero_tail(float* buf, int alpha2, int64_t rows, int64_t r0, int64_t r1, int64_t block, int64_t count) {
  const int64_t cols = round_up(count, kLanes);
  if (cols > count)
    for (int xi = 0; xi < alpha2; ++xi)
      for (int64_t r = r0; r < r1; ++r) std::fill_n(buf + (xi * rows + r) * block + count, cols - count, 0.0f);
}

// Tiles per batch of the row-wise transforms: runs of neighbouring tiles (whole tile rows or
// their parts) are transformed into per-tile arrays until a batch holds this many tiles, then the
// batch's tiles go kLanes at a time, whatever the tile rows' lengths (4 tiles on 7×7 maps, 28 on
// 56×56). Small enough for the batch's arrays to stay in L1.
constexpr int64_t kBatchTiles = 64;

// V[ξ][c][t] for channels [c0, c1) of the block's tiles [first, first + count) of x (width
// t.block; columns count..round-up-to-kLanes zero), by rows: a run of neighbouring tiles in one
// tile row reads α input rows; the column transform (B^T over the α rows) runs along the rows;
// then each transformed row i is split into per-tile arrays col[i][b][tile] = its column
// tile·m + b (b < α, the tile's α columns), so the row transform (B over the α columns) reads
// kLanes tiles at once, from one run or several. Same operations in the same order as a
// per-tile B^T d B.
template <int M>
DP_VECTOR_CLONES void transform_input_rows(
    const float* x, const Conv2dGeometry& g, const Tiling& t, int64_t first, int64_t count, int64_t c0,
    int64_t c1, float* v) {
  constexpr int A = M + 2;
  const int64_t H = g.h, W = g.w, C = g.c, plane = g.h * g.w;
  const int64_t max_run = std::min(t.cols, count);
  // Staged rows and their column transform, with room for whole-vector reads past the run.
  const int64_t spanv = round_up(max_run * M + 2, kLanes) + (M + 1) * kLanes;
  const int64_t cap = kBatchTiles + max_run + kLanes;  // a batch's per-tile arrays
  float* rows = scratch<float>(2, 2 * A * spanv + A * A * cap);
  float* colt = rows + A * spanv;
  float* cols = colt + A * spanv;  // cols[(i·α + b)·cap + tile of the batch]
  for (int64_t c = c0; c < c1; ++c) {
    int64_t batch_off = 0, filled = 0;
    for (int64_t tile = first; tile < first + count;) {
      const Run rn = run_at(t, first, count, tile);
      tile += rn.length;
      const float* xc = x + (rn.image * C + c) * plane;
      const int64_t w_begin = rn.tx * M - g.pad, span = rn.length * M + 2;
      const int64_t lo = std::clamp<int64_t>(-w_begin, 0, span), hi = std::clamp<int64_t>(W - w_begin, lo, span);
      const int64_t used = round_up(span, kLanes);
      for (int a = 0; a < A; ++a) {
        float* r = rows + a * spanv;
        const int64_t h = rn.ty * M - g.pad + a;
        const bool inside = h >= 0 && h < H;
        std::fill(r, r + (inside ? lo : used), 0.0f);
        if (!inside) continue;
        copy_short(r + lo, xc + h * W + w_begin + lo, hi - lo);
        std::fill(r + hi, r + used, 0.0f);
      }
      for (int64_t w0 = 0; w0 < used; w0 += kLanes) {  // columns: B^T over the α rows
        Vec d[A], o[A];
        for (int a = 0; a < A; ++a) d[a] = load(rows + a * spanv + w0);
        F3<M>::input(d, 1, o, 1);
        for (int i = 0; i < A; ++i) store(colt + i * spanv + w0, o[i]);
      }
      for (int i = 0; i < A; ++i) {  // per-tile columns (lanes past the run: rewritten or unused)
        const float* src = colt + i * spanv;
        float* dst = cols + i * A * cap + filled;
        for (int64_t u0 = 0; u0 < rn.length; u0 += kLanes) {  // columns u·m + b: b < m, then m, m + 1
          Vec ph[M], next[M];
          split_phases<M>(src + M * u0, ph);
          split_phases<M>(src + M * u0 + M, next);
          for (int b = 0; b < M; ++b) store(dst + b * cap + u0, ph[b]);
          store(dst + M * cap + u0, next[0]);
          store(dst + (M + 1) * cap + u0, next[1]);
        }
      }
      filled += rn.length;
      if (filled < kBatchTiles && tile < first + count) continue;
      for (int i = 0; i < A; ++i)  // rows: B over each tile's α columns, kLanes tiles at a time
        for (int64_t u0 = 0; u0 < filled; u0 += kLanes) {
          Vec d[A], o[A];
          for (int b = 0; b < A; ++b) d[b] = load(cols + (i * A + b) * cap + u0);
          F3<M>::input(d, 1, o, 1);
          const int64_t n = std::min<int64_t>(kLanes, filled - u0), at = batch_off + u0;
          for (int j = 0; j < A; ++j) {
            float* dst = v + ((i * A + j) * C + c) * t.block + at;
            if (n == kLanes) store(dst, o[j]);
            else store_partial(dst, o[j], n, at + kLanes <= t.block);
          }
        }
      batch_off += filled;
      filled = 0;
    }
  }
  zero_tail(v, A * A, C, c0, c1, t.block, count);
}

// y tiles from M[ξ][k][lane] (+ bias), cropped at the output's edges: each output row of a
// group's tiles is assembled in a line and copied run by run (neighbouring tiles are contiguous
// in y), instead of element by element.
template <int M>
DP_VECTOR_CLONES void transform_output_block(
    const float* mbuf, const float* bias, const Conv2dGeometry& g, const Tiling& t,
    const std::vector<LaneTiles>& groups, float* y) {
  constexpr int A = M + 2;
  const int64_t K = g.k, P = g.p, Q = g.q, plane = g.p * g.q;
  for (size_t grp = 0; grp < groups.size(); ++grp) {
    const LaneTiles& lanes = groups[grp];
    const int64_t l0 = static_cast<int64_t>(grp) * kLanes;
    for (int64_t k = 0; k < K; ++k) {
      Vec m[A * A], o[M * M];
      for (int i = 0; i < A * A; ++i) m[i] = load(mbuf + (i * K + k) * t.block + l0);
      transform_2d<A, M>(m, o, [](const Vec* in, int is, Vec* out, int os) { F3<M>::output(in, is, out, os); });
      const float b = bias != nullptr ? bias[k] : 0.0f;
      for (int r = 0; r < M; ++r) {
        alignas(64) float line[M * kLanes];
        merge_phases<M>(o + r * M, b, line);  // line[l·m + s] = o[r·m + s][l] + b
        for (int run = 0; run < lanes.runs; ++run) {
          const int first = lanes.run_lane0[run];
          const int64_t row = lanes.row0[first] + r, col = lanes.col0[first];
          if (row >= P) continue;
          const int64_t n = std::min<int64_t>(lanes.run_lanes[run] * M, Q - col);
          float* dst = y + (lanes.image[first] * K + k) * plane + row * Q + col;
          if (n == M * kLanes) std::memcpy(dst, line, sizeof(float) * M * kLanes);  // a whole group: vector moves
          else copy_short(dst, line + first * M, n);
        }
      }
    }
  }
}

// dM[ξ][k][t] = (A dy A^T)[ξ] for channels [k0, k1) of the block's tiles [first, first + count)
// of dy (zero outside the output), F(2,3) row by row: a run of tiles in one tile row copies its
// two rows of dy into two lines at the batch's next tile (tile u at columns 2u, 2u + 1: the 2×2
// patches do not overlap), so that, split into even and odd columns, the lines give kLanes tiles'
// patches as four whole vectors (the same transform of the same values as the per-tile gather).
template <int M>
DP_VECTOR_CLONES void transform_output_grad_rows(const float* dy, const Conv2dGeometry& g, const Tiling& t,
                                                 int64_t first, int64_t count, int64_t k0, int64_t k1, float* dm) {
  constexpr int A = M + 2;
  const int64_t K = g.k, P = g.p, Q = g.q, plane = g.p * g.q;
  const int64_t linel = (kBatchTiles + std::min(t.cols, count) + kLanes) * M;
  float* lines = scratch<float>(2, M * linel);
  for (int64_t k = k0; k < k1; ++k) {
    int64_t batch_off = 0, filled = 0;
    for (int64_t tile = first; tile < first + count;) {
      const Run rn = run_at(t, first, count, tile);
      tile += rn.length;
      const float* yk = dy + (rn.image * K + k) * plane;
      const int64_t col = rn.tx * M, width = std::min(rn.length * M, Q - col);
      for (int r = 0; r < M; ++r) {
        float* line = lines + r * linel + filled * M;
        const int64_t row = rn.ty * M + r, n = row < P ? width : 0;
        copy_short(line, yk + row * Q + col, n);
        std::fill(line + n, line + rn.length * M, 0.0f);
      }
      filled += rn.length;
      if (filled < kBatchTiles && tile < first + count) continue;
      for (int64_t u0 = 0; u0 < filled; u0 += kLanes) {
        Vec d[M * M], o[A * A];
        for (int r = 0; r < M; ++r) split_phases<M>(lines + r * linel + M * u0, d + r * M);
        transform_2d<M, A>(d, o, [](const Vec* in, int is, Vec* out, int os) { F3<M>::output_adjoint(in, is, out, os); });
        const int64_t n = std::min<int64_t>(kLanes, filled - u0), at = batch_off + u0;
        for (int xi = 0; xi < A * A; ++xi) {
          float* dst = dm + (xi * K + k) * t.block + at;
          if (n == kLanes) store(dst, o[xi]);
          else store_partial(dst, o[xi], n, at + kLanes <= t.block);
        }
      }
      batch_off += filled;
      filled = 0;
    }
  }
  zero_tail(dm, A * A, K, k0, k1, t.block, count);
}

// U[ξ][k][c] = (G w[k][c] G^T)[ξ] for filters k in [k0, k1), kLanes input channels at once.
template <int M>
DP_VECTOR_CLONES void transform_filter_rows(const float* w, int64_t K, int64_t C, int64_t k0, int64_t k1, float* u) {
  constexpr int A = M + 2;
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t c0 = 0; c0 < C; c0 += kLanes) {
      const int64_t n = std::min<int64_t>(kLanes, C - c0);
      alignas(64) float taps[9 * kLanes] = {};
      for (int64_t l = 0; l < n; ++l)
        for (int i = 0; i < 9; ++i) taps[i * kLanes + l] = w[(k * C + c0 + l) * 9 + i];
      Vec d[9], o[A * A];
      for (int i = 0; i < 9; ++i) d[i] = load(taps + i * kLanes);
      transform_2d<3, A>(d, o, [](const Vec* in, int is, Vec* out, int os) { F3<M>::filter(in, is, out, os); });
      for (int i = 0; i < A * A; ++i) {
        float* dst = u + (i * K + k) * C + c0;
        if (n == kLanes) store(dst, o[i]);
        else std::memcpy(dst, &o[i], sizeof(float) * n);
      }
    }
}

template <int M>
void transform_filters(const float* w, int64_t K, int64_t C, float* u) {
  parallel_for(0, K, 1, [&](int64_t k0, int64_t k1) { transform_filter_rows<M>(w, K, C, k0, k1, u); });
}

// dw[k][c] = G^T dU[·][k][c] G for filters k in [k0, k1), kLanes input channels at once.
template <int M>
DP_VECTOR_CLONES void adjoint_filter_rows(const float* du, int64_t K, int64_t C, int64_t k0, int64_t k1, float* dw) {
  constexpr int A = M + 2;
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t c0 = 0; c0 < C; c0 += kLanes) {
      const int64_t n = std::min<int64_t>(kLanes, C - c0);
      Vec d[A * A], o[9];
      for (int i = 0; i < A * A; ++i) {
        const float* src = du + (i * K + k) * C + c0;
        if (n == kLanes) {
          d[i] = load(src);
        } else {
          d[i] = Vec{};
          for (int64_t l = 0; l < n; ++l) d[i][l] = src[l];
        }
      }
      transform_2d<A, 3>(d, o, [](const Vec* in, int is, Vec* out, int os) { F3<M>::filter_adjoint(in, is, out, os); });
      alignas(64) float taps[9 * kLanes];
      for (int j = 0; j < 9; ++j) store(taps + j * kLanes, o[j]);
      for (int64_t l = 0; l < n; ++l)
        for (int j = 0; j < 9; ++j) dw[(k * C + c0 + l) * 9 + j] = taps[j * kLanes + l];
    }
}

// Blocks run in parallel, each on its own thread's scratch: every output tile is written once.
template <int M>
void forward_impl(const float* x, const float* w, const float* bias, float* y, const Conv2dGeometry& g) {
  constexpr int A = M + 2;
  const int64_t C = g.c, K = g.k;
  const Tiling t = make_tiling(g, M);
  Tensor u = Tensor::empty({A * A * K * C});
  transform_filters<M>(w, K, C, u.data<float>());
  parallel_for(0, t.blocks, 1, [&](int64_t b0, int64_t b1) {
    float* v = scratch<float>(0, A * A * C * t.block);
    float* m = scratch<float>(1, A * A * K * t.block);
    std::vector<LaneTiles> groups;
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t first = blk * t.block, count = std::min(t.block, t.total - first);
      const int64_t cols = round_up(count, kLanes);
      decode_lanes(t, first, count, groups);
      transform_input_rows<M>(x, g, t, first, count, 0, C, v);
      for (int xi = 0; xi < A * A; ++xi)
        gemm_rows(u.data<float>() + xi * K * C, C, v + xi * C * t.block, t.block, m + xi * K * t.block, t.block, K,
                  cols, C);
      transform_output_block<M>(m, bias, g, t, groups, y);
    }
  });
}

// The data gradient of a stride-1 3×3 convolution with padding pad is the convolution of dy
// with the flipped filters, input and output channels swapped, padding 2 - pad.
template <int M>
void backward_data_impl(const float* dy, const float* w, float* dx, const Conv2dGeometry& g) {
  Tensor flipped_t = Tensor::empty({g.k * g.c * 9});
  float* flipped = flipped_t.data<float>();
  for (int64_t k = 0; k < g.k; ++k)
    for (int64_t c = 0; c < g.c; ++c)
      for (int i = 0; i < 9; ++i) flipped[(c * g.k + k) * 9 + 8 - i] = w[(k * g.c + c) * 9 + i];
  Conv2dGeometry gt{g.n, g.k, g.p, g.q, g.c, 3, 3, 1, 2 - g.pad, g.h, g.w};
  forward_impl<M>(dy, flipped, nullptr, dx, gt);
}

// Rows of dU per GEMM task in the weight gradient: fixed by the shape, so the tasks, and every
// element's sum, are the same for any thread count. At least 64 rows (each task packs the
// block's V_ξ again), at most four tasks per ξ: 16..144 tasks per block for 1..64 cores.
int64_t weight_rows_per_task(int64_t k) { return std::max<int64_t>(64, (k + 3) / 4); }

// The weight gradient sums over every tile of the batch into one dU[ξ][k][c], block after
// block in order: per block, the transforms run in parallel over channels, then the (m+2)²
// GEMMs in parallel over (ξ, rows of dU). No per-thread partial sums: memory stays at one dU
// and one block, and each dU element is accumulated by the same calls whatever the threads.
template <int M>
void backward_weight_impl(const float* x, const float* dy, float* dw, const Conv2dGeometry& g) {
  constexpr int A = M + 2;
  const int64_t C = g.c, K = g.k;
  const Tiling t = make_tiling(g, M);
  Tensor du_t = Tensor::empty({A * A * K * C}), v_t = Tensor::empty({A * A * C * t.block});
  Tensor dm_t = Tensor::empty({A * A * K * t.block});
  float *du = du_t.data<float>(), *v = v_t.data<float>(), *dm = dm_t.data<float>();
  const int64_t rows = weight_rows_per_task(K), row_tasks = (K + rows - 1) / rows;
  for (int64_t blk = 0; blk < t.blocks; ++blk) {
    const int64_t first = blk * t.block, count = std::min(t.block, t.total - first);
    const int64_t cols = round_up(count, kLanes);
    parallel_for(0, C + K, 1, [&](int64_t i0, int64_t i1) {  // channels of x, then of dy
      if (i0 < C) transform_input_rows<M>(x, g, t, first, count, i0, std::min(i1, C), v);
      if (i1 > C) transform_output_grad_rows<M>(dy, g, t, first, count, std::max(i0, C) - C, i1 - C, dm);
    });
    const float beta = blk == 0 ? 0.0f : 1.0f;
    parallel_for(0, A * A * row_tasks, 1, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t xi = j / row_tasks, k0 = j % row_tasks * rows, k1 = std::min(K, k0 + rows);
        blas::gemm(false, true, k1 - k0, C, cols, 1.0f, dm + (xi * K + k0) * t.block, t.block,
                   v + xi * C * t.block, t.block, beta, du + (xi * K + k0) * C, C);
      }
    });
  }
  parallel_for(0, K, 1, [&](int64_t k0, int64_t k1) { adjoint_filter_rows<M>(du, K, C, k0, k1, dw); });
}

// F(2,3) forward, F(4,3) for both gradients. F(4,3) does 1.8x fewer multiplications (a ResNet-18
// training step 7 % shorter, interleaved A/B at 2 threads), but its transforms (coefficients up to
// 8 and 1/24) round ~10x coarser: with an F(4,3) forward the ResNet-18 training logits drift
// 1.25e-5 from PyTorch's (tests/nets, bound 1e-5), so the forward stays F(2,3) (4.3e-6 there). The
// gradients stay within their contracts: PyTorch's gradients (tests/nets) and two data-parallel
// ranks against one process over six steps (tests/dist: momenta ≤ 7.3e-7 over 8 seeds, bound
// 4e-6; F(2,3) ≤ 1.9e-7). An earlier 20-step version of that test had ruled F(4,3) out (1.4e-4),
// but a ReLU gate flipping near zero, not the transforms, made that jump: the same test failed
// for a third of the seeds with F(2,3) too.
constexpr int kDefaultTile[3] = {2, 4, 4};

}  // namespace

int tile_size_for(const Conv2dGeometry& g, Pass pass) {
  if (g.r != 3 || g.s != 3 || g.stride != 1 || g.pad > 2) return 0;
  // A 3-channel image (the stem) or a few channels do too little GEMM work per transformed value.
  if (g.c < 16 || g.k < 16) return 0;
  // Benchmarks only: DP_CPU_WINOGRAD = three digits (forward, data, weight), each 0 (im2col), 2 or 4.
  static const std::string forced = [] {
    const char* env = std::getenv("DP_CPU_WINOGRAD");
    return std::string(env != nullptr ? env : "");
  }();
  const size_t i = static_cast<size_t>(pass);
  if (forced.size() == 3 && (forced[i] == '0' || forced[i] == '2' || forced[i] == '4')) return forced[i] - '0';
  return kDefaultTile[i];
}

void forward(const float* x, const float* w, const float* bias, float* y, const Conv2dGeometry& g, int tile) {
  if (tile == 4) forward_impl<4>(x, w, bias, y, g);
  else forward_impl<2>(x, w, bias, y, g);
}

void backward_data(const float* dy, const float* w, float* dx, const Conv2dGeometry& g, int tile) {
  if (tile == 4) backward_data_impl<4>(dy, w, dx, g);
  else backward_data_impl<2>(dy, w, dx, g);
}

void backward_weight(const float* x, const float* dy, float* dw, const Conv2dGeometry& g, int tile) {
  if (tile == 4) backward_weight_impl<4>(x, dy, dw, g);
  else backward_weight_impl<2>(x, dy, dw, g);
}

}  // namespace dp::kernels::cpu::winograd
