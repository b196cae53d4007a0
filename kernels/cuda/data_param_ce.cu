// Fused data-parameter cross-entropy on CUDA: one warp per row (rows are short: 10 to 1000
// classes), three sweeps over the row held in L1 (max; Σe and Σe·z; dlogits). Contract and CPU
// reference: kernels/data_param_ce.h, kernels/cpu/data_param_ce.cpp. Launches go on the
// context's stream; nothing synchronises.
#include <cmath>
#include <limits>

#include "kernels/cuda/common.cuh"
#include "kernels/data_param_ce.h"
#include "kernels/data_param_ce_args.h"

namespace dp::kernels::cuda {

namespace {

using detail::OpScope;

using ::dp::kernels::detail::DataParamCeArgs;
using ::dp::kernels::detail::out_ptr;

constexpr int kWarpsPerBlock = 8;
constexpr int kReduceThreads = 256;

template <class T>
__device__ __forceinline__ T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// s_j − max(s) with s_j rounded before the subtraction: a fused multiply-add would leave the
// rounding error of z_y/σ* in the winning row (e_y ≠ 1), so a one-hot row's σ gradient would
// not come out exactly 0 as it does on the CPU and in the reference.
__device__ __forceinline__ float shifted(float z, float inv_sigma, float smax) {
  return __fsub_rn(__fmul_rn(z, inv_sigma), smax);
}
__device__ __forceinline__ double shifted(double z, double inv_sigma, double smax) {
  return __dsub_rn(__dmul_rn(z, inv_sigma), smax);
}

template <class T>
__global__ void data_param_ce_kernel(DataParamCeArgs<T> a, T* row_loss) {
  const int64_t b = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (b >= a.batch) return;
  const int64_t C = a.num_classes;
  const T* z = a.logits + b * C;
  const int64_t y = a.labels[b];
  const bool use_class = a.theta_class != nullptr, use_inst = a.theta_inst != nullptr;
  const int64_t idx = use_inst ? a.indices[b] : 0;
  if (y < 0 || y >= C || (use_inst && (idx < 0 || idx >= a.num_instances))) {
    const T nan = std::numeric_limits<T>::quiet_NaN();
    if (a.dlogits)
      for (int64_t j = lane; j < C; j += 32) a.dlogits[b * C + j] = nan;
    if (lane == 0) {
      row_loss[b] = nan;
      if (a.dtheta_class_rows) a.dtheta_class_rows[b] = nan;
      if (a.dtheta_inst_rows) a.dtheta_inst_rows[b] = nan;
    }
    return;
  }
  T exp_class = 0, exp_inst = 0, theta_c = 0, theta_i = 0;
  if (use_class) { theta_c = a.theta_class[y]; exp_class = exp(theta_c); }
  if (use_inst) { theta_i = a.theta_inst[idx]; exp_inst = exp(theta_i); }
  T sigma = 1;
  if (use_class && use_inst) sigma = exp_class + exp_inst;
  else if (use_class) sigma = exp_class;
  else if (use_inst) sigma = exp_inst;

  T zmax = -std::numeric_limits<T>::infinity();
  for (int64_t j = lane; j < C; j += 32) zmax = max(zmax, z[j]);
  zmax = warp_max(zmax);
  const T inv_sigma = T(1) / sigma;
  const T smax = zmax * inv_sigma;  // rounded like every s_j: max(s) − s_max is exactly 0
  T sum_e = 0, sum_ez = 0;
  for (int64_t j = lane; j < C; j += 32) {
    const T e = exp(shifted(z[j], inv_sigma, smax));
    sum_e += e;
    sum_ez += e * z[j];
  }
  sum_e = warp_sum(sum_e);
  sum_ez = warp_sum(sum_ez);
  const T zy = z[y];
  const T inv_sum = T(1) / sum_e;
  const T scale = inv_sigma / static_cast<T>(a.batch);
  if (a.dlogits) {
    T* dz = a.dlogits + b * C;
    for (int64_t j = lane; j < C; j += 32) {
      const T p = exp(shifted(z[j], inv_sigma, smax)) * inv_sum;
      dz[j] = (p - (j == y ? T(1) : T(0))) * scale;
    }
  }
  if (lane != 0) return;
  const T ce = smax + log(sum_e) - zy * inv_sigma;
  const T dsigma = (zy - sum_ez * inv_sum) * scale * inv_sigma;
  T loss = ce / static_cast<T>(a.batch);
  if (a.row_ce) a.row_ce[b] = ce;
  if (a.sigma) a.sigma[b] = sigma;
  if (a.dsigma) a.dsigma[b] = dsigma;
  if (use_class) {
    T g = dsigma * exp_class * static_cast<T>(a.row_grad_scale);
    if (a.wd_class > 0) {
      g += static_cast<T>(a.wd_class) * theta_c;
      loss += T(0.5) * static_cast<T>(a.wd_class) * theta_c * theta_c;
    }
    if (a.dtheta_class_rows) a.dtheta_class_rows[b] = g;
  }
  if (use_inst) {
    T g = dsigma * exp_inst * static_cast<T>(a.row_grad_scale);
    if (a.wd_inst > 0) {
      g += static_cast<T>(a.wd_inst) * theta_i;
      loss += T(0.5) * static_cast<T>(a.wd_inst) * theta_i * theta_i;
    }
    if (a.dtheta_inst_rows) a.dtheta_inst_rows[b] = g;
  }
  row_loss[b] = loss;
}

// One block, fixed per-thread strides and a fixed tree: the same sum on every run.
template <class T>
__global__ void sum_rows_kernel(const T* row_loss, int64_t n, T* out) {
  __shared__ double partial[kReduceThreads];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kReduceThreads) s += static_cast<double>(row_loss[i]);
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int w = kReduceThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) partial[threadIdx.x] += partial[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = static_cast<T>(partial[0]);
}

}  // namespace

void data_param_ce(const DataParamCeTensors& t) {
  OpScope op(t.logits);
  DP_CUDA_FLOAT_TYPES(t.logits.dtype(), "data_param_ce", [&] {
    using T = scalar_t;
    DataParamCeArgs<T> a = ::dp::kernels::detail::data_param_ce_args<T>(t);
    // Per-row losses, reduced by one block in a fixed order (from the caching allocator: a
    // captured graph gets it from its private pool).
    Tensor row_loss = Tensor::empty({a.batch}, t.logits.dtype(), t.logits.device());
    if (a.batch > 0) {
      const int64_t threads = kWarpsPerBlock * 32;
      const int64_t blocks = (a.batch * 32 + threads - 1) / threads;
      data_param_ce_kernel<T><<<static_cast<unsigned>(blocks), threads, 0, op.stream()>>>(a, row_loss.data<T>());
      DP_CUDA_CHECK_LAUNCH();
    }
    sum_rows_kernel<T><<<1, kReduceThreads, 0, op.stream()>>>(row_loss.data<T>(), a.batch, out_ptr<T>(t.loss));
    DP_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace dp::kernels::cuda
