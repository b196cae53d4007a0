// Batch normalisation, parallel over channels: each channel's statistics are accumulated in
// double by one thread in a fixed order (image by image), so results do not depend on the
// thread count.
#include "kernels/batch_norm.h"

#include <cmath>
#include <type_traits>
#include <vector>

#include "engine/thread_pool.h"
#include "kernels/cpu/type_dispatch.h"

namespace dp::kernels::cpu {

namespace {

// x viewed as [N, C, L] with L = H·W (1 for a [N, C] input).
struct Layout {
  int64_t n, c, l;
  explicit Layout(const Tensor& x)
      : n(x.size(0)), c(x.size(1)), l(x.numel() / std::max<int64_t>(x.size(0) * x.size(1), 1)) {}
};

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <class T>
T* ptr_or_null(Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// Channel reductions with kLanes independent double accumulators: a single running sum is
// one serial chain of dependent additions (latency-bound, ~4 cycles per element); lanes let
// the compiler vectorise and overlap them. The lanes are combined in a fixed order, so the
// result depends only on the data layout, never on the thread count.
constexpr int kLanes = 16;

struct LaneSum {
  double v[kLanes] = {};
  double total() const {
    double t = 0.0;
    for (int k = 0; k < kLanes; ++k) t += v[k];
    return t;
  }
};

// acc += Σ x[j]
template <class T>
inline void lane_sum(const T* x, int64_t n, LaneSum& acc) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) acc.v[k] += static_cast<double>(x[j + k]);
  for (int k = 0; j < n; ++j, ++k) acc.v[k] += static_cast<double>(x[j]);
}

// acc += Σ (x[j] - mean)²
template <class T>
inline void lane_sq_dev(const T* x, int64_t n, double mean, LaneSum& acc) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) {
      const double d = static_cast<double>(x[j + k]) - mean;
      acc.v[k] += d * d;
    }
  for (int k = 0; j < n; ++j, ++k) {
    const double d = static_cast<double>(x[j]) - mean;
    acc.v[k] += d * d;
  }
}

// The fused ReLU's forward (what kernels::relu computes: NaN becomes 0), as a compile-time variant
// so that the loop carries no test.
template <bool kRelu, class T>
inline T relu_if(T v) {
  if constexpr (kRelu) return v > T(0) ? v : T(0);
  else return v;
}
// f(std::true_type{}) when `on`, else f(std::false_type{}): picks the variant once per call.
template <class F>
inline void with_relu(bool on, F&& f) {
  if (on) f(std::true_type{});
  else f(std::false_type{});
}
// The fused ReLU's gradient gate, out[j] > 0 ? dy[j] : 0 (exactly kernels::relu's backward). Both
// loads unconditional, so the select vectorises: a conditional load of dy becomes a branch on
// random data (measured 15× slower).
template <class T>
inline void gate(const T* out, const T* dy, int64_t n, T* gated) {
  for (int64_t j = 0; j < n; ++j) {
    const T d = dy[j];
    gated[j] = out[j] > T(0) ? d : T(0);
  }
}

// s_dy += Σ dy[j], s_dy_xc += Σ dy[j]·(x[j] - mean)
template <class T>
inline void lane_dy_xc(const T* x, const T* dy, int64_t n, double mean, LaneSum& s_dy, LaneSum& s_dy_xc) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) {
      const double g = static_cast<double>(dy[j + k]);
      s_dy.v[k] += g;
      s_dy_xc.v[k] += g * (static_cast<double>(x[j + k]) - mean);
    }
  for (int k = 0; j < n; ++j, ++k) {
    const double g = static_cast<double>(dy[j]);
    s_dy.v[k] += g;
    s_dy_xc.v[k] += g * (static_cast<double>(x[j]) - mean);
  }
}

// What one channel's forward does with its totals (count values, Σx and Σ(x - mean)²): the
// statistics saved for backward, the running statistics and the normalisation, shared by the
// one-process kernel and the synchronised one so that equal totals give equal bits.
template <class T>
inline void forward_channel(const Layout& s, int64_t c, double sum, double ss, double count, double eps,
                            double momentum, const T* px, const T* pg, const T* pb, T* prm, T* prv, T* py, T* pm,
                            T* pi, bool relu) {
  const double mean = sum / count;
  const double var = ss / count;
  const double invstd = 1.0 / std::sqrt(var + eps);
  pm[c] = static_cast<T>(mean);
  pi[c] = static_cast<T>(invstd);
  if (prm != nullptr) prm[c] = static_cast<T>((1.0 - momentum) * prm[c] + momentum * mean);
  if (prv != nullptr) {
    const double unbiased = count > 1 ? ss / (count - 1) : var;
    prv[c] = static_cast<T>((1.0 - momentum) * prv[c] + momentum * unbiased);
  }
  // (x - mean)·a + β rather than x·a + b: no cancellation when |mean| ≫ std.
  const T m = static_cast<T>(mean);
  const T a = static_cast<T>(invstd * (pg ? pg[c] : 1.0));
  const T b = static_cast<T>(pb ? pb[c] : 0.0);
  with_relu(relu, [&](auto kRelu) {
    for (int64_t n = 0; n < s.n; ++n) {
      const T* row = px + (n * s.c + c) * s.l;
      T* out = py + (n * s.c + c) * s.l;
      for (int64_t j = 0; j < s.l; ++j) out[j] = relu_if<kRelu.value>((row[j] - m) * a + b);
    }
  });
}

// Channel c's rows of dy, gated by the fused ReLU's output when there is one (into `gated`, [n][l]).
template <class T>
struct GatedDy {
  const Layout& s;
  const T* dy;
  const T* relu_out;
  std::vector<T>& gated;
  void gate_channel(int64_t c) {
    if (relu_out == nullptr) return;
    gated.resize(static_cast<size_t>(s.n * s.l));
    for (int64_t n = 0; n < s.n; ++n) {
      const int64_t off = (n * s.c + c) * s.l;
      gate(relu_out + off, dy + off, s.l, gated.data() + n * s.l);
    }
  }
  const T* row(int64_t c, int64_t n) const { return relu_out != nullptr ? gated.data() + n * s.l : dy + (n * s.c + c) * s.l; }
};

// Σdy and Σdy·(x - mean) of channel c (dy gated).
template <class T>
inline void grad_sums_channel(const Layout& s, int64_t c, const T* px, const GatedDy<T>& dy, double mean,
                              double& sum_dy, double& sum_dy_xc) {
  LaneSum acc_dy, acc_dy_xc;
  for (int64_t n = 0; n < s.n; ++n) lane_dy_xc(px + (n * s.c + c) * s.l, dy.row(c, n), s.l, mean, acc_dy, acc_dy_xc);
  sum_dy = acc_dy.total();
  sum_dy_xc = acc_dy_xc.total();
}

// f(c, gated dy, Σdy, Σdy·(x - mean)) for every channel, in parallel over channels.
template <class T, class F>
void for_each_channel_grad_sums(const Layout& s, const Tensor& x, const Tensor& dy, const Tensor& relu_out,
                                const T* mean, F&& f) {
  parallel_for(0, s.c, 1, [&](int64_t c0, int64_t c1) {
    thread_local std::vector<T> gated;
    GatedDy<T> g{s, dy.data<T>(), ptr_or_null<T>(relu_out), gated};
    for (int64_t c = c0; c < c1; ++c) {
      g.gate_channel(c);
      double sum_dy = 0.0, sum_dy_xc = 0.0;
      grad_sums_channel(s, c, x.data<T>(), g, mean[c], sum_dy, sum_dy_xc);
      f(c, g, sum_dy, sum_dy_xc);
    }
  });
}

// What one channel's backward does with its totals (in the loss's scale): dγ, dβ and
// dx = γ·invstd·(dy - mean(dy) - x̂·mean(dy·x̂)), x̂ = (x - mean)·invstd, for a dy that is
// dx_scale times the loss's. Shared like forward_channel.
template <class T>
inline void backward_channel(const Layout& s, int64_t c, double sum_dy, double sum_dy_xc, double count,
                             double dx_scale, const T* px, const GatedDy<T>& dy, const T* pg, double mean,
                             double invstd, T* pdx, T* pdg, T* pdb) {
  if (pdg != nullptr) pdg[c] = static_cast<T>(sum_dy_xc * invstd);
  if (pdb != nullptr) pdb[c] = static_cast<T>(sum_dy);
  if (pdx == nullptr) return;
  const double g = pg ? pg[c] : 1.0;
  const T k_dy = static_cast<T>(g * invstd);
  const T k_x = static_cast<T>(dx_scale * (g * invstd * invstd * invstd * sum_dy_xc / count));
  const T k_0 = static_cast<T>(dx_scale * (-g * invstd * sum_dy / count));
  const T m = static_cast<T>(mean);
  for (int64_t n = 0; n < s.n; ++n) {
    const int64_t off = (n * s.c + c) * s.l;
    const T* xr = px + off;
    const T* gr = dy.row(c, n);
    T* out = pdx + off;
    for (int64_t j = 0; j < s.l; ++j) out[j] = k_dy * gr[j] - k_x * (xr[j] - m) + k_0;
  }
}

}  // namespace

void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps,
                              double momentum, Tensor& running_mean, Tensor& running_var, Tensor& y,
                              Tensor& save_mean, Tensor& save_invstd, bool relu) {
  const Layout s(x);
  DP_CPU_FLOAT_TYPES(x.dtype(), "batch_norm", [&] {
    const scalar_t* px = x.data<scalar_t>();
    const double count = static_cast<double>(s.n * s.l);
    parallel_for(0, s.c, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        LaneSum sum_acc;
        for (int64_t n = 0; n < s.n; ++n) lane_sum(px + (n * s.c + c) * s.l, s.l, sum_acc);
        const double sum = sum_acc.total();
        LaneSum ss_acc;  // two-pass variance: no cancellation for large means
        for (int64_t n = 0; n < s.n; ++n) lane_sq_dev(px + (n * s.c + c) * s.l, s.l, sum / count, ss_acc);
        forward_channel(s, c, sum, ss_acc.total(), count, eps, momentum, px, ptr_or_null<scalar_t>(gamma),
                        ptr_or_null<scalar_t>(beta), ptr_or_null<scalar_t>(running_mean),
                        ptr_or_null<scalar_t>(running_var), y.data<scalar_t>(), save_mean.data<scalar_t>(),
                        save_invstd.data<scalar_t>(), relu);
      }
    });
  });
}

void batch_norm_moment_sums(const Tensor& x, const Tensor& total_sum, double count, Tensor& out) {
  const Layout s(x);
  const double* ptotal = ptr_or_null<double>(total_sum);
  double* po = out.data<double>();
  DP_CPU_FLOAT_TYPES(x.dtype(), "batch_norm_moment_sums", [&] {
    const scalar_t* px = x.data<scalar_t>();
    parallel_for(0, s.c, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        LaneSum acc;
        for (int64_t n = 0; n < s.n; ++n) {
          const scalar_t* row = px + (n * s.c + c) * s.l;
          if (ptotal == nullptr) lane_sum(row, s.l, acc);
          else lane_sq_dev(row, s.l, ptotal[c] / count, acc);
        }
        po[c] = acc.total();
      }
    });
  });
}

void batch_norm_forward_from_sums(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& sums,
                                  double count, double eps, double momentum, Tensor& running_mean,
                                  Tensor& running_var, Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                                  bool relu) {
  const Layout s(x);
  const double* ps = sums.data<double>();
  DP_CPU_FLOAT_TYPES(x.dtype(), "batch_norm", [&] {
    parallel_for(0, s.c, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c)
        forward_channel(s, c, ps[c], ps[s.c + c], count, eps, momentum, x.data<scalar_t>(),
                        ptr_or_null<scalar_t>(gamma), ptr_or_null<scalar_t>(beta),
                        ptr_or_null<scalar_t>(running_mean), ptr_or_null<scalar_t>(running_var), y.data<scalar_t>(),
                        save_mean.data<scalar_t>(), save_invstd.data<scalar_t>(), relu);
    });
  });
}

void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             const Tensor& running_mean, const Tensor& running_var, double eps,
                             Tensor& y, bool relu) {
  const Layout s(x);
  DP_CPU_FLOAT_TYPES(x.dtype(), "batch_norm", [&] {
    const scalar_t* px = x.data<scalar_t>();
    const scalar_t* pg = ptr_or_null<scalar_t>(gamma);
    const scalar_t* pb = ptr_or_null<scalar_t>(beta);
    const scalar_t* prm = running_mean.data<scalar_t>();
    const scalar_t* prv = running_var.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    parallel_for(0, s.n * s.c, std::max<int64_t>(1, 4096 / std::max<int64_t>(s.l, 1)),
                 [&](int64_t r0, int64_t r1) {
                   for (int64_t r = r0; r < r1; ++r) {
                     const int64_t c = r % s.c;
                     const double invstd = 1.0 / std::sqrt(static_cast<double>(prv[c]) + eps);
                     const double g = pg ? pg[c] : 1.0;
                     const scalar_t m = prm[c];
                     const scalar_t a = static_cast<scalar_t>(invstd * g);
                     const scalar_t b = static_cast<scalar_t>(pb ? pb[c] : 0.0);
                     const scalar_t* row = px + r * s.l;
                     scalar_t* out = py + r * s.l;
                     with_relu(relu, [&](auto kRelu) {
                       for (int64_t j = 0; j < s.l; ++j) out[j] = relu_if<kRelu.value>((row[j] - m) * a + b);
                     });
                   }
                 });
  });
}

void batch_norm_backward(const Tensor& x, const Tensor& dy, const Tensor& gamma,
                         const Tensor& save_mean, const Tensor& save_invstd, Tensor& dx,
                         Tensor& dgamma, Tensor& dbeta, const Tensor& relu_out) {
  const Layout s(x);
  DP_CPU_FLOAT_TYPES(x.dtype(), "batch_norm_backward", [&] {
    const scalar_t* px = x.data<scalar_t>();
    const scalar_t* pm = save_mean.data<scalar_t>();
    const scalar_t* pi = save_invstd.data<scalar_t>();
    const double count = static_cast<double>(s.n * s.l);
    for_each_channel_grad_sums(s, x, dy, relu_out, pm, [&](int64_t c, const GatedDy<scalar_t>& g, double sum_dy,
                                                           double sum_dy_xc) {
      backward_channel(s, c, sum_dy, sum_dy_xc, count, 1.0, px, g, ptr_or_null<scalar_t>(gamma), pm[c], pi[c],
                       ptr_or_null<scalar_t>(dx), ptr_or_null<scalar_t>(dgamma), ptr_or_null<scalar_t>(dbeta));
    });
  });
}

void batch_norm_grad_sums(const Tensor& x, const Tensor& dy, const Tensor& save_mean, const Tensor& relu_out,
                          double scale, Tensor& out) {
  const Layout s(x);
  double* po = out.data<double>();
  DP_CPU_FLOAT_TYPES(x.dtype(), "batch_norm_grad_sums", [&] {
    for_each_channel_grad_sums(s, x, dy, relu_out, save_mean.data<scalar_t>(),
                               [&](int64_t c, const GatedDy<scalar_t>&, double sum_dy, double sum_dy_xc) {
                                 po[c] = scale * sum_dy;
                                 po[s.c + c] = scale * sum_dy_xc;
                               });
  });
}

void batch_norm_backward_from_sums(const Tensor& x, const Tensor& dy, const Tensor& gamma, const Tensor& save_mean,
                                   const Tensor& save_invstd, const Tensor& sums, double count, double dx_scale,
                                   Tensor& dx, Tensor& dgamma, Tensor& dbeta, const Tensor& relu_out) {
  const Layout s(x);
  const double* ps = sums.data<double>();
  DP_CPU_FLOAT_TYPES(x.dtype(), "batch_norm_backward", [&] {
    const scalar_t* pm = save_mean.data<scalar_t>();
    const scalar_t* pi = save_invstd.data<scalar_t>();
    parallel_for(0, s.c, 1, [&](int64_t c0, int64_t c1) {
      thread_local std::vector<scalar_t> gated;
      GatedDy<scalar_t> g{s, dy.data<scalar_t>(), ptr_or_null<scalar_t>(relu_out), gated};
      for (int64_t c = c0; c < c1; ++c) {
        if (dx.defined()) g.gate_channel(c);
        backward_channel(s, c, ps[c], ps[s.c + c], count, dx_scale, x.data<scalar_t>(), g,
                         ptr_or_null<scalar_t>(gamma), pm[c], pi[c], ptr_or_null<scalar_t>(dx),
                         ptr_or_null<scalar_t>(dgamma), ptr_or_null<scalar_t>(dbeta));
      }
    });
  });
}

void batch_norm_backward_eval(const Tensor& dy, const Tensor& gamma, const Tensor& running_var,
                              double eps, Tensor& dx, const Tensor& relu_out) {
  const Layout s(dy);
  DP_CPU_FLOAT_TYPES(dy.dtype(), "batch_norm_backward_eval", [&] {
    const scalar_t* pdy = dy.data<scalar_t>();
    const scalar_t* pout = ptr_or_null<scalar_t>(relu_out);
    const scalar_t* pg = ptr_or_null<scalar_t>(gamma);
    const scalar_t* prv = running_var.data<scalar_t>();
    scalar_t* pdx = dx.data<scalar_t>();
    parallel_for(0, s.n * s.c, std::max<int64_t>(1, 4096 / std::max<int64_t>(s.l, 1)),
                 [&](int64_t r0, int64_t r1) {
                   for (int64_t r = r0; r < r1; ++r) {
                     const int64_t c = r % s.c;
                     const scalar_t a = static_cast<scalar_t>((pg ? pg[c] : 1.0) /
                                                              std::sqrt(static_cast<double>(prv[c]) + eps));
                     const scalar_t* row = pdy + r * s.l;
                     scalar_t* out = pdx + r * s.l;
                     if (pout != nullptr) {
                       gate(pout + r * s.l, row, s.l, out);  // then scaled in place
                       row = out;
                     }
                     for (int64_t j = 0; j < s.l; ++j) out[j] = row[j] * a;
                   }
                 });
  });
}

}  // namespace dp::kernels::cpu
