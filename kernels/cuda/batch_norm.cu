// CUDA batch normalisation (contract: kernels/batch_norm.h), NCHW, channels-last (NHWC) or
// [N, C], float32/float64, and bf16 activations with float32 parameters and statistics (the bf16
// mode).
//
// Own kernels rather than cuDNN's: the contract's backward takes no epsilon (cuDNN's wants the
// forward's), eps below CUDNN_BN_MIN_EPSILON stays legal, and the reductions are deterministic.
// Per-channel statistics come from a two-level reduction: a (channel, split) grid writes
// double-precision partial sums, a finishing kernel adds each channel's partials in a fixed order.
// Channels-last only changes how the partials are gathered (a tile of channels per block, so
// that a warp reads consecutive channels of one pixel); the partials have the same layout, so
// the finishing kernels and the elementwise ones (given the channel of a flat index) are shared.
#include "kernels/batch_norm.h"
#include "kernels/cuda/common.cuh"

namespace dp::kernels::cuda {

namespace {

using ::dp::cuda::Context;
using detail::grid_for;
using detail::kThreads;
using detail::OpScope;
using detail::acc_t;
using detail::from_acc;
using detail::to_acc;

// Activations are T (float, double or bf16); parameters, statistics and coefficients are
// P = acc_t<T> (float for bf16 activations), which is also what each element is computed in.
DType stats_dtype(const Tensor& x) { return x.dtype() == DType::BFloat16 ? DType::Float32 : x.dtype(); }

struct Layout {
  int64_t n, c, hw;
  bool cl;  // channels-last (NHWC): element (n, k, p) sits at (n·hw + p)·c + k, channel fastest
  __host__ __device__ int64_t m() const { return n * hw; }  // elements per channel
  // Channel of flat (memory) index i.
  __device__ __forceinline__ int64_t channel(int64_t i) const { return cl ? i % c : (i / hw) % c; }
};

// x, y, dy and dx of one call share a memory format (the op wrappers allocate them like x, and
// autograd hands each node its gradient in its output's format).
Layout layout_of(const Tensor& x) {
  int64_t hw = 1;
  for (int64_t d = 2; d < x.dim(); ++d) hw *= x.size(d);
  return {x.size(0), x.size(1), hw, x.is_channels_last()};
}

// Channels-last partial kernels: a block is kTileC channels × kTileRows rows (pixels n·hw + p).
constexpr int kTileC = 32, kTileRows = 8;
static_assert(kTileC * kTileRows == kThreads, "a tile is one block of the usual size");

// Splits per channel so that the grid fills the GPU (about 4 blocks per SM) without tiny blocks
// of work (each thread should walk at least ~4 elements). `groups`: blocks per split (one per
// channel for NCHW, one per channel tile for NHWC); `rows`: elements of a channel one block
// visits per step. NHWC has few groups, so it gets a higher cap on the splits; the finishing
// kernels add S partials per channel serially, which stays cheap at a few hundred.
int splits_for(const Context& ctx, int64_t groups, int64_t m, int64_t rows, int64_t cap) {
  int64_t want = (4 * static_cast<int64_t>(ctx.sm_count()) + groups - 1) / groups;
  int64_t useful = (m + 4 * rows - 1) / (4 * rows);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({want, useful, cap})));
}

int splits_for(const Context& ctx, const Layout& l) {
  if (l.cl) return splits_for(ctx, (l.c + kTileC - 1) / kTileC, l.m(), kTileRows, 512);
  return splits_for(ctx, l.c, l.m(), kThreads, 128);
}

// Grid of the partial kernels: (channels or channel tiles, splits).
dim3 partial_grid(const Layout& l, int S) {
  const int64_t groups = l.cl ? (l.c + kTileC - 1) / kTileC : l.c;
  return dim3(static_cast<unsigned>(groups), static_cast<unsigned>(S));
}
dim3 partial_block(const Layout& l) { return l.cl ? dim3(kTileC, kTileRows) : dim3(kThreads); }

__device__ __forceinline__ void block_sum2(double& a, double& b) {
  __shared__ double sa[32], sb[32];
  for (int o = 16; o > 0; o >>= 1) {
    a += __shfl_down_sync(0xffffffffu, a, o);
    b += __shfl_down_sync(0xffffffffu, b, o);
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sa[warp] = a;
    sb[warp] = b;
  }
  __syncthreads();
  int nwarps = (blockDim.x + 31) / 32;
  a = threadIdx.x < nwarps ? sa[threadIdx.x] : 0.0;
  b = threadIdx.x < nwarps ? sb[threadIdx.x] : 0.0;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) {
      a += __shfl_down_sync(0xffffffffu, a, o);
      b += __shfl_down_sync(0xffffffffu, b, o);
    }
}

// Channels-last blocks (kTileC, kTileRows): adds the kTileRows values of each column (channel)
// in a fixed order; the sums end up in the threads of row threadIdx.y == 0.
__device__ __forceinline__ void column_sum2(double& a, double& b) {
  __shared__ double sa[kTileRows][kTileC], sb[kTileRows][kTileC];
  sa[threadIdx.y][threadIdx.x] = a;
  sb[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y == 0)
    for (int r = 1; r < kTileRows; ++r) {
      a += sa[r][threadIdx.x];
      b += sb[r][threadIdx.x];
    }
}

// grid (C, S): partial Σx and Σx² of channel blockIdx.x over split blockIdx.y.
template <class T>
__global__ void bn_stats_partial(const T* x, Layout l, double* psum, double* psq) {
  const int64_t c = blockIdx.x, s = blockIdx.y, S = gridDim.y, m = l.m();
  double a = 0.0, b = 0.0;
  for (int64_t j = s * blockDim.x + threadIdx.x; j < m; j += S * blockDim.x) {
    int64_t n = j / l.hw, k = j - n * l.hw;
    double v = static_cast<double>(to_acc(x[(n * l.c + c) * l.hw + k]));
    a += v;
    b += v * v;
  }
  block_sum2(a, b);
  if (threadIdx.x == 0) {
    psum[c * S + s] = a;
    psq[c * S + s] = b;
  }
}

// Channels-last, grid (ceil(C / kTileC), S), block (kTileC, kTileRows): the same partials as
// bn_stats_partial. Split s takes rows s·kTileRows + threadIdx.y, stepping by S·kTileRows; a warp
// reads kTileC consecutive channels of one row (coalesced).
template <class T>
__global__ void bn_stats_partial_nhwc(const T* x, Layout l, double* psum, double* psq) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kTileC + threadIdx.x;
  const int64_t s = blockIdx.y, S = gridDim.y, m = l.m();
  double a = 0.0, b = 0.0;
  if (c < l.c)
    for (int64_t row = s * kTileRows + threadIdx.y; row < m; row += S * kTileRows) {
      const double v = static_cast<double>(to_acc(x[row * l.c + c]));
      a += v;
      b += v * v;
    }
  column_sum2(a, b);  // every thread takes part: it synchronises the block
  if (threadIdx.y == 0 && c < l.c) {
    psum[c * S + s] = a;
    psq[c * S + s] = b;
  }
}

template <class T>
__global__ void bn_stats_finish(const double* psum, const double* psq, int S, Layout l, double eps,
                                double momentum, T* running_mean, T* running_var, T* save_mean,
                                T* save_invstd) {
  int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= l.c) return;
  double a = 0.0, b = 0.0;
  for (int s = 0; s < S; ++s) {
    a += psum[c * S + s];
    b += psq[c * S + s];
  }
  const double m = static_cast<double>(l.m());
  const double mean = a / m;
  const double var = fmax(b / m - mean * mean, 0.0);  // biased: what normalisation uses
  save_mean[c] = static_cast<T>(mean);
  save_invstd[c] = static_cast<T>(1.0 / sqrt(var + eps));
  if (running_mean != nullptr) {
    const double unbiased = m > 1 ? var * m / (m - 1) : var;
    running_mean[c] = static_cast<T>((1.0 - momentum) * running_mean[c] + momentum * mean);
    running_var[c] = static_cast<T>((1.0 - momentum) * running_var[c] + momentum * unbiased);
  }
}

// dy[i], or 0 where the fused ReLU's output is not positive (relu_out null: no fused ReLU);
// exactly the gate of kernels::relu's backward.
template <class T>
__device__ __forceinline__ acc_t<T> gated(const T* relu_out, const T* dy, int64_t i) {
  return relu_out != nullptr && !(to_acc(relu_out[i]) > acc_t<T>(0)) ? acc_t<T>(0) : to_acc(dy[i]);
}

// y = (x - mean[c]) · scale[c] · gamma[c] + beta[c], then max(y, 0) when the ReLU is fused
// (NaN becomes 0, as in kernels::relu).
template <class T, class P>
__global__ void bn_normalize(const T* x, const P* mean, const P* scale, const P* gamma, const P* beta,
                             Layout l, bool relu, T* y) {
  DP_GRID_STRIDE(i, l.n * l.c * l.hw) {
    int64_t c = l.channel(i);
    P g = gamma ? gamma[c] : P(1), b = beta ? beta[c] : P(0);
    const P v = (to_acc(x[i]) - mean[c]) * scale[c] * g + b;
    y[i] = from_acc<T>(relu && !(v > P(0)) ? P(0) : v);
  }
}

template <class T>
__global__ void bn_invstd_from_var(const T* var, double eps, int64_t c, T* invstd) {
  DP_GRID_STRIDE(i, c) invstd[i] = static_cast<T>(1.0 / sqrt(static_cast<double>(var[i]) + eps));
}

// grid (C, S): partial Σdy and Σdy·(x - mean).
template <class T, class P>
__global__ void bn_backward_partial(const T* x, const T* dy, const T* relu_out, const P* mean, Layout l,
                                    double* psum, double* pdot) {
  const int64_t c = blockIdx.x, s = blockIdx.y, S = gridDim.y, m = l.m();
  const double mu = static_cast<double>(mean[c]);
  double a = 0.0, b = 0.0;
  for (int64_t j = s * blockDim.x + threadIdx.x; j < m; j += S * blockDim.x) {
    int64_t n = j / l.hw, k = j - n * l.hw;
    int64_t idx = (n * l.c + c) * l.hw + k;
    double g = static_cast<double>(gated(relu_out, dy, idx));
    a += g;
    b += g * (static_cast<double>(to_acc(x[idx])) - mu);
  }
  block_sum2(a, b);
  if (threadIdx.x == 0) {
    psum[c * S + s] = a;
    pdot[c * S + s] = b;
  }
}

// Channels-last version of bn_backward_partial (see bn_stats_partial_nhwc for the tiling).
template <class T, class P>
__global__ void bn_backward_partial_nhwc(const T* x, const T* dy, const T* relu_out, const P* mean, Layout l,
                                         double* psum, double* pdot) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kTileC + threadIdx.x;
  const int64_t s = blockIdx.y, S = gridDim.y, m = l.m();
  double a = 0.0, b = 0.0;
  if (c < l.c) {
    const double mu = static_cast<double>(mean[c]);
    for (int64_t row = s * kTileRows + threadIdx.y; row < m; row += S * kTileRows) {
      const int64_t idx = row * l.c + c;
      const double g = static_cast<double>(gated(relu_out, dy, idx));
      a += g;
      b += g * (static_cast<double>(to_acc(x[idx])) - mu);
    }
  }
  column_sum2(a, b);  // every thread takes part: it synchronises the block
  if (threadIdx.y == 0 && c < l.c) {
    psum[c * S + s] = a;
    pdot[c * S + s] = b;
  }
}

// Per channel: dgamma, dbeta and the coefficients of dx = a·(dy - b - (x - mean)·k), from the S
// partials of `count` values per channel, for a dy that is dx_scale times the loss's.
template <class T>
__global__ void bn_backward_finish(const double* psum, const double* pdot, int S, Layout l, double count,
                                   double dx_scale, const T* gamma, const T* invstd, T* dgamma, T* dbeta, T* coef) {
  int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= l.c) return;
  double sum_dy = 0.0, dot = 0.0;
  for (int s = 0; s < S; ++s) {
    sum_dy += psum[c * S + s];
    dot += pdot[c * S + s];
  }
  const double istd = static_cast<double>(invstd[c]);
  const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
  if (dgamma) dgamma[c] = static_cast<T>(dot * istd);
  if (dbeta) dbeta[c] = static_cast<T>(sum_dy);
  coef[c] = static_cast<T>(g * istd);
  coef[l.c + c] = static_cast<T>(dx_scale * sum_dy / count);
  coef[2 * l.c + c] = static_cast<T>(dx_scale * istd * istd * dot / count);
}

template <class T, class P>
__global__ void bn_backward_dx(const T* x, const T* dy, const T* relu_out, const P* mean, const P* coef, Layout l,
                               T* dx) {
  DP_GRID_STRIDE(i, l.n * l.c * l.hw) {
    int64_t c = l.channel(i);
    dx[i] = from_acc<T>(coef[c] * (gated(relu_out, dy, i) - coef[l.c + c] - (to_acc(x[i]) - mean[c]) * coef[2 * l.c + c]));
  }
}

template <class T, class P>
__global__ void bn_backward_eval_dx(const T* dy, const T* relu_out, const P* gamma, const P* var, double eps,
                                    Layout l, T* dx) {
  DP_GRID_STRIDE(i, l.n * l.c * l.hw) {
    int64_t c = l.channel(i);
    P g = gamma ? gamma[c] : P(1);
    dx[i] = from_acc<T>(gated(relu_out, dy, i) * g * static_cast<P>(1.0 / sqrt(static_cast<double>(var[c]) + eps)));
  }
}

// Synchronised BN's phases (see kernels/batch_norm.h). grid (C, S): partial Σx (total_sum null)
// or Σ(x - total_sum[c]/count)² of channel blockIdx.x over split blockIdx.y.
template <class T>
__global__ void bn_moment_partial(const T* x, Layout l, const double* total_sum, double count, double* partial) {
  const int64_t c = blockIdx.x, s = blockIdx.y, S = gridDim.y, m = l.m();
  const double mu = total_sum != nullptr ? total_sum[c] / count : 0.0;
  double a = 0.0, unused = 0.0;
  for (int64_t j = s * blockDim.x + threadIdx.x; j < m; j += S * blockDim.x) {
    int64_t n = j / l.hw, k = j - n * l.hw;
    const double v = static_cast<double>(to_acc(x[(n * l.c + c) * l.hw + k]));
    a += total_sum != nullptr ? (v - mu) * (v - mu) : v;
  }
  block_sum2(a, unused);
  if (threadIdx.x == 0) partial[c * S + s] = a;
}

// Channels-last version of bn_moment_partial (the tiling of bn_stats_partial_nhwc).
template <class T>
__global__ void bn_moment_partial_nhwc(const T* x, Layout l, const double* total_sum, double count,
                                       double* partial) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kTileC + threadIdx.x;
  const int64_t s = blockIdx.y, S = gridDim.y, m = l.m();
  double a = 0.0, unused = 0.0;
  if (c < l.c) {
    const double mu = total_sum != nullptr ? total_sum[c] / count : 0.0;
    for (int64_t row = s * kTileRows + threadIdx.y; row < m; row += S * kTileRows) {
      const double v = static_cast<double>(to_acc(x[row * l.c + c]));
      a += total_sum != nullptr ? (v - mu) * (v - mu) : v;
    }
  }
  column_sum2(a, unused);  // every thread takes part: it synchronises the block
  if (threadIdx.y == 0 && c < l.c) partial[c * S + s] = a;
}

// out[r·C + c] = scale · Σ_s partial[(r·C + c)·S + s] for `rows` rows of C channel partials.
__global__ void bn_partials_total(const double* partial, int S, int64_t channels, int rows, double scale,
                                  double* out) {
  DP_GRID_STRIDE(i, channels * rows) {
    double t = 0.0;
    for (int s = 0; s < S; ++s) t += partial[i * S + s];
    out[i] = scale * t;
  }
}

// One process's bn_stats_finish from totals: Σx and Σ(x - mean)² (sums [2, C]) over `count` values.
template <class T>
__global__ void bn_stats_from_sums(const double* sums, Layout l, double count, double eps, double momentum,
                                   T* running_mean, T* running_var, T* save_mean, T* save_invstd) {
  DP_GRID_STRIDE(c, l.c) {
    const double mean = sums[c] / count, ss = sums[l.c + c];
    const double var = ss / count;
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(1.0 / sqrt(var + eps));
    if (running_mean != nullptr) {
      const double unbiased = count > 1 ? ss / (count - 1) : var;
      running_mean[c] = static_cast<T>((1.0 - momentum) * running_mean[c] + momentum * mean);
      running_var[c] = static_cast<T>((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
  }
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <class T>
T* mut_ptr_or_null(Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// y = normalised x (bn_normalize) with per-channel mean and scale (invstd) in the statistics' dtype.
template <class T>
void normalize(OpScope& op, const Layout& l, const Tensor& x, const Tensor& mean, const Tensor& scale,
               const Tensor& gamma, const Tensor& beta, bool relu, Tensor& y) {
  using P = acc_t<T>;
  if (x.numel() == 0) return;
  bn_normalize<<<grid_for(op.ctx, x.numel()), kThreads, 0, op.stream()>>>(
      x.data<T>(), mean.data<P>(), scale.data<P>(), ptr_or_null<P>(gamma), ptr_or_null<P>(beta), l, relu, y.data<T>());
  DP_CUDA_CHECK_LAUNCH();
}

// Float64 partial sums of a per-channel reduction: `rows` rows of C·S values, (channel, split).
struct Partials {
  int S;
  Tensor buffer;
  Partials(const OpScope& op, const Layout& l, const Tensor& x, int rows)
      : S(splits_for(op.ctx, l)), buffer(Tensor::empty({rows, l.c * S}, DType::Float64, x.device())) {}
  double* row(int r) { return buffer.data<double>() + static_cast<int64_t>(r) * buffer.size(1); }
};

// The partials of Σdy (row 0) and Σdy·(x - mean) (row 1), dy gated by the fused ReLU's output.
template <class T>
Partials backward_partials(OpScope& op, const Layout& l, const Tensor& x, const Tensor& dy, const Tensor& relu_out,
                           const Tensor& mean) {
  using P = acc_t<T>;
  Partials p(op, l, x, 2);
  const auto kernel = l.cl ? bn_backward_partial_nhwc<T, P> : bn_backward_partial<T, P>;
  kernel<<<partial_grid(l, p.S), partial_block(l), 0, op.stream()>>>(x.data<T>(), dy.data<T>(), ptr_or_null<T>(relu_out),
                                                                    mean.data<P>(), l, p.row(0), p.row(1));
  DP_CUDA_CHECK_LAUNCH();
  return p;
}

}  // namespace

void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps,
                              double momentum, Tensor& running_mean, Tensor& running_var, Tensor& y,
                              Tensor& save_mean, Tensor& save_invstd, bool relu) {
  Layout l = layout_of(x);
  if (l.c == 0) return;
  OpScope op(x);
  Partials p(op, l, x, 2);  // Σx, Σx²
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "batch_norm", [&] {
    using P = acc_t<scalar_t>;
    const auto stats_partial = l.cl ? bn_stats_partial_nhwc<scalar_t> : bn_stats_partial<scalar_t>;
    stats_partial<<<partial_grid(l, p.S), partial_block(l), 0, op.stream()>>>(x.data<scalar_t>(), l, p.row(0),
                                                                              p.row(1));
    DP_CUDA_CHECK_LAUNCH();
    bn_stats_finish<<<static_cast<unsigned>((l.c + 127) / 128), 128, 0, op.stream()>>>(
        p.row(0), p.row(1), p.S, l, eps, momentum, mut_ptr_or_null<P>(running_mean),
        running_mean.defined() ? running_var.data<P>() : nullptr, save_mean.data<P>(), save_invstd.data<P>());
    DP_CUDA_CHECK_LAUNCH();
    normalize<scalar_t>(op, l, x, save_mean, save_invstd, gamma, beta, relu, y);
  });
}

void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                             const Tensor& running_var, double eps, Tensor& y, bool relu) {
  Layout l = layout_of(x);
  if (x.numel() == 0) return;
  OpScope op(x);
  Tensor invstd = Tensor::empty({l.c}, stats_dtype(x), x.device());
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "batch_norm", [&] {
    using P = acc_t<scalar_t>;
    bn_invstd_from_var<<<grid_for(op.ctx, l.c), kThreads, 0, op.stream()>>>(running_var.data<P>(), eps, l.c,
                                                                              invstd.data<P>());
    DP_CUDA_CHECK_LAUNCH();
    normalize<scalar_t>(op, l, x, running_mean, invstd, gamma, beta, relu, y);
  });
}

void batch_norm_backward(const Tensor& x, const Tensor& dy, const Tensor& gamma, const Tensor& save_mean,
                         const Tensor& save_invstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta,
                         const Tensor& relu_out) {
  Layout l = layout_of(x);
  if (l.c == 0) return;
  OpScope op(x);
  Tensor coef = Tensor::empty({3, l.c}, stats_dtype(x), x.device());
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "batch_norm_backward", [&] {
    using P = acc_t<scalar_t>;
    Partials p = backward_partials<scalar_t>(op, l, x, dy, relu_out, save_mean);
    bn_backward_finish<<<static_cast<unsigned>((l.c + 127) / 128), 128, 0, op.stream()>>>(
        p.row(0), p.row(1), p.S, l, static_cast<double>(l.m()), 1.0, ptr_or_null<P>(gamma), save_invstd.data<P>(),
        mut_ptr_or_null<P>(dgamma),
        mut_ptr_or_null<P>(dbeta), coef.data<P>());
    DP_CUDA_CHECK_LAUNCH();
    if (!dx.defined() || x.numel() == 0) return;
    bn_backward_dx<<<grid_for(op.ctx, x.numel()), kThreads, 0, op.stream()>>>(
        x.data<scalar_t>(), dy.data<scalar_t>(), ptr_or_null<scalar_t>(relu_out), save_mean.data<P>(), coef.data<P>(),
        l, dx.data<scalar_t>());
    DP_CUDA_CHECK_LAUNCH();
  });
}

void batch_norm_backward_eval(const Tensor& dy, const Tensor& gamma, const Tensor& running_var, double eps,
                              Tensor& dx, const Tensor& relu_out) {
  if (dy.numel() == 0) return;
  Layout l = layout_of(dy);
  OpScope op(dy);
  DP_CUDA_FLOAT_TYPES_BF16(dy.dtype(), "batch_norm_backward", [&] {
    using P = acc_t<scalar_t>;
    bn_backward_eval_dx<<<grid_for(op.ctx, dy.numel()), kThreads, 0, op.stream()>>>(
        dy.data<scalar_t>(), ptr_or_null<scalar_t>(relu_out), ptr_or_null<P>(gamma), running_var.data<P>(), eps, l,
        dx.data<scalar_t>());
    DP_CUDA_CHECK_LAUNCH();
  });
}

void batch_norm_moment_sums(const Tensor& x, const Tensor& total_sum, double count, Tensor& out) {
  Layout l = layout_of(x);
  if (l.c == 0) return;
  OpScope op(x);
  Partials p(op, l, x, 1);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "batch_norm_moment_sums", [&] {
    const auto moment_partial = l.cl ? bn_moment_partial_nhwc<scalar_t> : bn_moment_partial<scalar_t>;
    moment_partial<<<partial_grid(l, p.S), partial_block(l), 0, op.stream()>>>(
        x.data<scalar_t>(), l, ptr_or_null<double>(total_sum), count, p.row(0));
    DP_CUDA_CHECK_LAUNCH();
  });
  bn_partials_total<<<grid_for(op.ctx, l.c), kThreads, 0, op.stream()>>>(p.row(0), p.S, l.c, 1, 1.0,
                                                                           out.data<double>());
  DP_CUDA_CHECK_LAUNCH();
}

void batch_norm_forward_from_sums(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& sums,
                                  double count, double eps, double momentum, Tensor& running_mean,
                                  Tensor& running_var, Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                                  bool relu) {
  Layout l = layout_of(x);
  if (l.c == 0) return;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "batch_norm", [&] {
    using P = acc_t<scalar_t>;
    bn_stats_from_sums<<<grid_for(op.ctx, l.c), kThreads, 0, op.stream()>>>(
        sums.data<double>(), l, count, eps, momentum, mut_ptr_or_null<P>(running_mean),
        running_mean.defined() ? running_var.data<P>() : nullptr, save_mean.data<P>(), save_invstd.data<P>());
    DP_CUDA_CHECK_LAUNCH();
    normalize<scalar_t>(op, l, x, save_mean, save_invstd, gamma, beta, relu, y);
  });
}

void batch_norm_grad_sums(const Tensor& x, const Tensor& dy, const Tensor& save_mean, const Tensor& relu_out,
                          double scale, Tensor& out) {
  Layout l = layout_of(x);
  if (l.c == 0) return;
  OpScope op(x);
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "batch_norm_grad_sums", [&] {
    Partials p = backward_partials<scalar_t>(op, l, x, dy, relu_out, save_mean);
    // Rows 0 and 1 are contiguous: one launch totals both into out [2, C].
    bn_partials_total<<<grid_for(op.ctx, 2 * l.c), kThreads, 0, op.stream()>>>(p.row(0), p.S, l.c, 2, scale,
                                                                                 out.data<double>());
    DP_CUDA_CHECK_LAUNCH();
  });
}

void batch_norm_backward_from_sums(const Tensor& x, const Tensor& dy, const Tensor& gamma, const Tensor& save_mean,
                                   const Tensor& save_invstd, const Tensor& sums, double count, double dx_scale,
                                   Tensor& dx, Tensor& dgamma, Tensor& dbeta, const Tensor& relu_out) {
  Layout l = layout_of(x);
  if (l.c == 0) return;
  OpScope op(x);
  Tensor coef = Tensor::empty({3, l.c}, stats_dtype(x), x.device());
  const double* ps = sums.data<double>();
  DP_CUDA_FLOAT_TYPES_BF16(x.dtype(), "batch_norm_backward", [&] {
    using P = acc_t<scalar_t>;
    // The totals are one partial per channel (S = 1): rows Σdy, Σdy·(x - mean) of sums [2, C].
    bn_backward_finish<<<static_cast<unsigned>((l.c + 127) / 128), 128, 0, op.stream()>>>(
        ps, ps + l.c, 1, l, count, dx_scale, ptr_or_null<P>(gamma), save_invstd.data<P>(),
        mut_ptr_or_null<P>(dgamma), mut_ptr_or_null<P>(dbeta), coef.data<P>());
    DP_CUDA_CHECK_LAUNCH();
    if (!dx.defined() || x.numel() == 0) return;
    bn_backward_dx<<<grid_for(op.ctx, x.numel()), kThreads, 0, op.stream()>>>(
        x.data<scalar_t>(), dy.data<scalar_t>(), ptr_or_null<scalar_t>(relu_out), save_mean.data<P>(), coef.data<P>(),
        l, dx.data<scalar_t>());
    DP_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace dp::kernels::cuda
