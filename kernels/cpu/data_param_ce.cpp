// CPU data-parameter cross-entropy (contract: kernels/data_param_ce.h). Compiled with
// -ffp-contract=off (kernels/meson.build), like the optimisers.
#include <fmt/format.h>

#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/thread_pool.h"
#include "kernels/cpu/type_dispatch.h"
#include "kernels/data_param_ce.h"
#include "kernels/data_param_ce_args.h"

namespace dp::kernels::cpu {

namespace {

using ::dp::kernels::detail::DataParamCeArgs;
using ::dp::kernels::detail::out_ptr;

template <class T>
void validate(const DataParamCeArgs<T>& a) {
  DP_CHECK(a.batch >= 0 && a.num_classes > 0,
           fmt::format("data_param_ce: bad sizes batch={} num_classes={}", a.batch, a.num_classes),
           "logits must be [batch, num_classes] with num_classes > 0");
  DP_CHECK(a.logits != nullptr && a.labels != nullptr, "data_param_ce: logits and labels are required",
           "pass the model's logits and the batch's labels");
  DP_CHECK(a.theta_inst == nullptr || (a.indices != nullptr && a.num_instances > 0),
           "data_param_ce: instance parameters need the batch's dataset indices",
           "every training batch must carry the dataset index of each sample (docs/method.md §4)");
  for (int64_t b = 0; b < a.batch; ++b) {
    const int64_t y = a.labels[b];
    DP_CHECK(y >= 0 && y < a.num_classes,
             fmt::format("data_param_ce: label {} of row {} is outside [0, {})", y, b, a.num_classes),
             "check the dataset's labels against the model's number of classes");
    if (a.theta_inst != nullptr) {
      const int64_t i = a.indices[b];
      DP_CHECK(i >= 0 && i < a.num_instances,
               fmt::format("data_param_ce: dataset index {} of row {} is outside [0, {})", i, b,
                           a.num_instances),
               "the instance parameters must have one entry per training sample");
    }
  }
}

template <class T>
double run(const DataParamCeArgs<T>& a) {
  validate(a);
  const int64_t B = a.batch, C = a.num_classes;
  if (B == 0) return 0.0;
  const bool use_class = a.theta_class != nullptr;
  const bool use_inst = a.theta_inst != nullptr;
  const bool decay_class = use_class && a.wd_class > 0.0;
  const bool decay_inst = use_inst && a.wd_inst > 0.0;

  // Per-row results are written to disjoint slots; the loss is reduced afterwards in row order,
  // so the result does not depend on the thread count.
  std::vector<double> row_loss(static_cast<size_t>(B));
  parallel_for(0, B, std::max<int64_t>(1, 16384 / C), [&](int64_t begin, int64_t end) {
    std::vector<double> e(static_cast<size_t>(C));
    for (int64_t b = begin; b < end; ++b) {
      const T* z = a.logits + b * C;
      const int64_t y = a.labels[b];
      // σ* in T arithmetic, as the reference forms it (exp of the gathered log parameters).
      T exp_class = T(0), exp_inst = T(0), theta_c = T(0), theta_i = T(0);
      if (use_class) { theta_c = a.theta_class[y]; exp_class = std::exp(theta_c); }
      if (use_inst) { theta_i = a.theta_inst[a.indices[b]]; exp_inst = std::exp(theta_i); }
      T sigma_t = T(1);
      if (use_class && use_inst) sigma_t = exp_class + exp_inst;
      else if (use_class) sigma_t = exp_class;
      else if (use_inst) sigma_t = exp_inst;
      const double sigma = sigma_t;

      // Stable softmax of s = z/σ*: σ* > 0, so max(s) = max(z)/σ*.
      T zmax = z[0];
      for (int64_t j = 1; j < C; ++j) zmax = z[j] > zmax ? z[j] : zmax;
      // s_j and exp in T (float exp is several times cheaper than double exp; each term is
      // correct to an ulp of T), the row sums in double.
      const T smax_t = zmax / sigma_t;
      const double smax = smax_t;
      double sum_e = 0.0, sum_ez = 0.0;
      for (int64_t j = 0; j < C; ++j) {
        const double ej = std::exp(z[j] / sigma_t - smax_t);
        e[j] = ej;
        sum_e += ej;
        sum_ez += ej * static_cast<double>(z[j]);
      }
      const double zy = z[y];
      const double ce = smax + std::log(sum_e) - static_cast<double>(z[y] / sigma_t);
      const double inv_sum = 1.0 / sum_e;
      const double scale = 1.0 / (sigma * static_cast<double>(B));
      if (a.dlogits != nullptr) {
        T* dz = a.dlogits + b * C;
        for (int64_t j = 0; j < C; ++j) dz[j] = static_cast<T>(e[j] * inv_sum * scale);
        dz[y] = static_cast<T>((e[y] * inv_sum - 1.0) * scale);
      }
      // ∂L_b/∂σ* = (z_y − Σ_j p_j z_j)/(σ*²·B); Σ p z = Σ e z / Σ e.
      const double dsigma = (zy - sum_ez * inv_sum) * scale / sigma;
      double loss = ce / static_cast<double>(B);
      if (a.row_ce) a.row_ce[b] = static_cast<T>(ce);
      if (a.sigma) a.sigma[b] = sigma_t;
      if (a.dsigma) a.dsigma[b] = static_cast<T>(dsigma);
      if (use_class) {
        double g = a.row_grad_scale * (dsigma * static_cast<double>(exp_class));
        if (decay_class) {
          g += a.wd_class * static_cast<double>(theta_c);
          loss += 0.5 * a.wd_class * static_cast<double>(theta_c) * static_cast<double>(theta_c);
        }
        if (a.dtheta_class_rows) a.dtheta_class_rows[b] = static_cast<T>(g);
      }
      if (use_inst) {
        double g = a.row_grad_scale * (dsigma * static_cast<double>(exp_inst));
        if (decay_inst) {
          g += a.wd_inst * static_cast<double>(theta_i);
          loss += 0.5 * a.wd_inst * static_cast<double>(theta_i) * static_cast<double>(theta_i);
        }
        if (a.dtheta_inst_rows) a.dtheta_inst_rows[b] = static_cast<T>(g);
      }
      row_loss[b] = loss;
    }
  });
  double total = 0.0;
  for (double l : row_loss) total += l;
  return total;
}

}  // namespace

void data_param_ce(const DataParamCeTensors& t) {
  DP_CPU_FLOAT_TYPES(t.logits.dtype(), "data_param_ce", [&] {
    DataParamCeArgs<scalar_t> a = ::dp::kernels::detail::data_param_ce_args<scalar_t>(t);
    *out_ptr<scalar_t>(t.loss) = static_cast<scalar_t>(run(a));
  });
}

}  // namespace dp::kernels::cpu
