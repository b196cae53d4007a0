// CUDA 2-D convolution through cuDNN (contract: kernels/conv2d.h), float32, or bf16 data with
// float32 compute (cuDNN's PSEUDO_BFLOAT16 configuration, tensor cores on sm_80+) and a float32
// bias added and reduced by our own kernels (the bf16 mode of engine/autocast.h).
//
// Activations are NCHW, or NHWC when the input is channels-last; the filter is then KRSC (the
// op wrapper passes a channels-last copy of the weight). cuDNN's tensor-core kernels work on
// NHWC natively: with NCHW bf16 data they transpose around every call.
//
// The algorithm for each (shape, pass, math mode) is chosen once, by cuDNN's heuristics or, with
// dp::cuda::set_cudnn_benchmark(true), by timing the candidates (cudnnFind*), and cached with its
// workspace size; later calls only look the choice up. Workspace memory is the context's
// scratch buffer, which grows to the largest need and stays (no allocation in the step).
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/conv2d.h"
#include "engine/cuda/graph.h"
#include "kernels/cuda/common.cuh"

namespace dp::kernels::cuda {

namespace {

// The device runtime (engine/cuda): contexts, math switches, capture checks.
using ::dp::cuda::allow_tf32;
using ::dp::cuda::check_not_capturing;
using ::dp::cuda::Context;
using ::dp::cuda::cudnn_benchmark;
using ::dp::cuda::deterministic;
using detail::OpScope;
using detail::from_acc;
using detail::grid_for;
using detail::kThreads;
using detail::to_acc;

cudnnDataType_t cudnn_type(DType t) { return t == DType::BFloat16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT; }

// Algorithms needing more scratch than this are skipped (cuDNN offers leaner ones).
constexpr size_t kMaxWorkspace = size_t{1} << 30;

cudnnTensorFormat_t cudnn_format(bool nhwc) { return nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW; }

// Sizes are given in N, C, H, W order whatever the format (cuDNN's convention).
struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(int64_t n, int64_t c, int64_t h, int64_t w, cudnnDataType_t type = CUDNN_DATA_FLOAT,
             bool nhwc = false) {
    DP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
    DP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, cudnn_format(nhwc), type, static_cast<int>(n),
                                              static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)));
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc(const Conv2dGeometry& g, cudnnDataType_t type, bool nhwc) {
    DP_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
    DP_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d, type, cudnn_format(nhwc), static_cast<int>(g.k),
                                              static_cast<int>(g.c), static_cast<int>(g.r), static_cast<int>(g.s)));
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvDesc(const Conv2dGeometry& g, bool bf16) {
    DP_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
    const int pad = static_cast<int>(g.pad), stride = static_cast<int>(g.stride);
    DP_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d, pad, pad, stride, stride, 1, 1,
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    DP_CUDNN_CHECK(cudnnSetConvolutionMathType(d, allow_tf32() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    // bf16 data computes in float32 (the compute type above) on tensor cores whatever TF32 says.
    if (bf16) DP_CUDNN_CHECK(cudnnSetConvolutionMathType(d, CUDNN_TENSOR_OP_MATH));
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
};

// Everything cuDNN needs to describe one convolution.
struct ConvDescs {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  ConvDescs(const Conv2dGeometry& g, DType dtype, bool nhwc_)
      : x(g.n, g.c, g.h, g.w, cudnn_type(dtype), nhwc_), y(g.n, g.k, g.p, g.q, cudnn_type(dtype), nhwc_),
        w(g, cudnn_type(dtype), nhwc_), conv(g, dtype == DType::BFloat16), bf16(dtype == DType::BFloat16),
        nhwc(nhwc_) {}
  bool bf16, nhwc;
};

enum class Pass { Forward, BackwardData, BackwardFilter };

struct AlgoChoice {
  int algo = 0;
  size_t workspace = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

using AlgoKey = std::tuple<int, Pass, bool, bool, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, int64_t>;

std::mutex g_cache_mutex;
std::map<AlgoKey, AlgoChoice> g_algo_cache;

template <class Perf>
AlgoChoice pick(const Perf* perfs, int count, bool tf32, const char* pass) {
  const bool need_deterministic = deterministic();
  for (int pass_no = 0; pass_no < 2; ++pass_no) {  // second pass: relax the math-type filter
    for (int i = 0; i < count; ++i) {
      const Perf& p = perfs[i];
      if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kMaxWorkspace) continue;
      if (need_deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
      if (!tf32 && pass_no == 0 && p.mathType != CUDNN_FMA_MATH) continue;
      return {static_cast<int>(p.algo), p.memory, tf32 ? p.mathType : CUDNN_FMA_MATH};
    }
  }
  DP_THROW(std::string("conv2d: cuDNN offers no usable ") + pass + " algorithm for this shape",
           need_deterministic ? "turn off dp::cuda::set_deterministic(true) for this layer"
                              : "check the convolution's sizes");
}

// Scratch for cudnnFind*: as much as the candidates may use, bounded by free memory.
size_t find_workspace_bytes() {
  size_t free_bytes = 0, total = 0;
  DP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  return std::min(kMaxWorkspace, free_bytes / 2);
}

// Chooses (once per shape) and returns the algorithm of a pass; the tensor pointers are only
// used when timing candidates in benchmark mode (their contents are then overwritten).
AlgoChoice choose(Context& ctx, const ConvDescs& d, const Conv2dGeometry& g, Pass pass,
                  const void* x, const void* w, const void* y, void* out) {
  // bf16 takes whatever math type cuDNN ranks first (tensor cores); the TF32 switch is for float32.
  const bool tf32 = allow_tf32() || d.bf16, bench = cudnn_benchmark();
  AlgoKey key{ctx.device(), pass, tf32, deterministic(), d.bf16, d.nhwc, g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.stride, g.pad};
  {
    std::lock_guard<std::mutex> lock(g_cache_mutex);
    auto it = g_algo_cache.find(key);
    if (it != g_algo_cache.end()) return it->second;
  }
  // A new shape inside a graph capture: cuDNN's timed search synchronises and may grow the
  // workspace. The training step runs each shape eagerly before capturing it, so this is a shape
  // its warm-up never saw.
  check_not_capturing("choosing a cuDNN convolution algorithm for a new shape");
  cudnnHandle_t h = ctx.cudnn();
  constexpr int kMax = 16;
  int count = 0;
  AlgoChoice c;
  switch (pass) {
    case Pass::Forward: {
      cudnnConvolutionFwdAlgoPerf_t perfs[kMax];
      if (bench) {
        size_t ws = find_workspace_bytes();
        DP_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x.d, x, d.w.d, w, d.conv.d, d.y.d, out, kMax,
                                                              &count, perfs, ctx.workspace(ws), ws));
      } else {
        DP_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.d, d.w.d, d.conv.d, d.y.d, kMax, &count, perfs));
      }
      c = pick(perfs, count, tf32, "forward");
      DP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, c.math));
      DP_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(
          h, d.x.d, d.w.d, d.conv.d, d.y.d, static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), &c.workspace));
      break;
    }
    case Pass::BackwardData: {
      cudnnConvolutionBwdDataAlgoPerf_t perfs[kMax];
      if (bench) {
        size_t ws = find_workspace_bytes();
        DP_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w.d, w, d.y.d, y, d.conv.d, d.x.d, out, kMax,
                                                                   &count, perfs, ctx.workspace(ws), ws));
      } else {
        DP_CUDNN_CHECK(
            cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.d, d.y.d, d.conv.d, d.x.d, kMax, &count, perfs));
      }
      c = pick(perfs, count, tf32, "backward-data");
      DP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, c.math));
      DP_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
          h, d.w.d, d.y.d, d.conv.d, d.x.d, static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), &c.workspace));
      break;
    }
    case Pass::BackwardFilter: {
      cudnnConvolutionBwdFilterAlgoPerf_t perfs[kMax];
      if (bench) {
        size_t ws = find_workspace_bytes();
        DP_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x.d, x, d.y.d, y, d.conv.d, d.w.d, out,
                                                                     kMax, &count, perfs, ctx.workspace(ws), ws));
      } else {
        DP_CUDNN_CHECK(
            cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.d, d.y.d, d.conv.d, d.w.d, kMax, &count, perfs));
      }
      c = pick(perfs, count, tf32, "backward-filter");
      DP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, c.math));
      DP_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
          h, d.x.d, d.y.d, d.conv.d, d.w.d, static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), &c.workspace));
      break;
    }
  }
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  g_algo_cache.emplace(key, c);
  return c;
}

// y[n, k, :, :] += bias[k] (a float32 bias, computed in float32). pq = 1 for NHWC: the channel
// of element i is then i % k.
template <class T>
__global__ void conv_bias_add_kernel(T* y, const float* bias, int64_t k, int64_t pq, int64_t total) {
  DP_GRID_STRIDE(i, total) y[i] = from_acc<T>(to_acc(y[i]) + bias[(i / pq) % k]);
}

// NHWC bias gradient, first level: grid (channel tiles of 32, S row splits), block (32, 8);
// partial[c·S + s] = Σ over rows s·8+ty, (s+S)·8+ty, … of dy[row, c]. Reads are coalesced along
// the channels; the fixed split and summation order keep it deterministic.
constexpr int kBiasRows = 8;
template <class T>
__global__ void conv_bias_grad_nhwc_partial(const T* dy, double* partial, int64_t rows, int64_t k) {
  __shared__ double sums[kBiasRows][32];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  const int64_t s = blockIdx.y, S = gridDim.y;
  double acc = 0.0;
  if (c < k)
    for (int64_t r = s * kBiasRows + threadIdx.y; r < rows; r += S * kBiasRows)
      acc += static_cast<double>(to_acc(dy[r * k + c]));
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < k) {
    for (int j = 1; j < kBiasRows; ++j) acc += sums[j][threadIdx.x];
    partial[c * S + s] = acc;
  }
}

__global__ void conv_bias_grad_finish(const double* partial, int S, int64_t k, float* db) {
  DP_GRID_STRIDE(c, k) {
    double acc = 0.0;
    for (int s = 0; s < S; ++s) acc += partial[c * S + s];
    db[c] = static_cast<float>(acc);
  }
}

// db[k] = Σ_{n,p,q} dy[n, k, p, q]: one block per channel, a fixed summation order (deterministic).
template <class T>
__global__ void conv_bias_grad_kernel(const T* dy, float* db, int64_t n, int64_t k, int64_t pq) {
  __shared__ double partial[kThreads];
  const int64_t c = blockIdx.x;
  double acc = 0.0;
  for (int64_t j = threadIdx.x; j < n * pq; j += blockDim.x) {
    const int64_t b = j / pq, e = j - b * pq;
    acc += static_cast<double>(to_acc(dy[(b * k + c) * pq + e]));
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[c] = static_cast<float>(partial[0]);
}

void check_dtypes(const char* op, const Tensor& data, const Tensor& bias) {
  if (data.dtype() == DType::Float32) {
    DP_CHECK(!bias.defined() || bias.dtype() == DType::Float32, std::string(op) + ": bias must be float32",
             "convert the bias with .to(DType::Float32)");
    return;
  }
  DP_CHECK(data.dtype() == DType::BFloat16 && (!bias.defined() || bias.dtype() == DType::Float32),
           std::string(op) + ": CUDA convolutions take float32, or bf16 data with a float32 bias; got " +
               dtype_name(data.dtype()),
           "use float32 tensors, or the bf16 mode (dp::AutocastGuard)");
}

// db[c] = Σ dy[n, p, q, c] for NHWC dy: two levels (partials per row split, then per channel).
void bias_grad_nhwc(const OpScope& op, const Tensor& dy, Tensor& db, const Conv2dGeometry& g) {
  const int64_t rows = g.n * g.p * g.q;
  const int64_t tiles = (g.k + 31) / 32;
  const int64_t want = (4 * static_cast<int64_t>(op.ctx.sm_count()) + tiles - 1) / tiles;
  const int S = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({want, (rows + 255) / 256, 256})));
  Tensor partial = Tensor::empty({g.k * S}, DType::Float64, dy.device());
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(S)), block(32, kBiasRows);
  if (dy.dtype() == DType::BFloat16)
    conv_bias_grad_nhwc_partial<<<grid, block, 0, op.stream()>>>(dy.data<__nv_bfloat16>(), partial.data<double>(),
                                                                 rows, g.k);
  else
    conv_bias_grad_nhwc_partial<<<grid, block, 0, op.stream()>>>(dy.data<float>(), partial.data<double>(), rows, g.k);
  DP_CUDA_CHECK_LAUNCH();
  conv_bias_grad_finish<<<grid_for(op.ctx, g.k), kThreads, 0, op.stream()>>>(partial.data<double>(), S, g.k,
                                                                              db.data<float>());
  DP_CUDA_CHECK_LAUNCH();
}

void check_sizes(const Conv2dGeometry& g) {
  for (int64_t v : {g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.p, g.q})
    DP_CHECK(v <= INT32_MAX, "conv2d: a dimension exceeds cuDNN's 32-bit sizes",
             "split the batch into smaller pieces");
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, const Conv2dGeometry& g) {
  check_dtypes("conv2d", x, b);
  if (y.numel() == 0) return;
  check_sizes(g);
  OpScope op(x);
  ConvDescs d(g, x.dtype(), x.is_channels_last());
  AlgoChoice c = choose(op.ctx, d, g, Pass::Forward, x.raw_data(), w.raw_data(), nullptr, y.raw_data());
  DP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, c.math));
  const float one = 1.f, zero = 0.f;
  cudnnHandle_t h = op.ctx.cudnn();
  void* ws = c.workspace ? op.ctx.workspace(c.workspace) : nullptr;
  DP_CUDNN_CHECK(cudnnConvolutionForward(h, &one, d.x.d, x.raw_data(), d.w.d, w.raw_data(), d.conv.d,
                                         static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws, c.workspace,
                                         &zero, d.y.d, y.raw_data()));
  if (b.defined() && (d.bf16 || d.nhwc)) {
    const int64_t total = y.numel(), pq = d.nhwc ? 1 : g.p * g.q;
    if (d.bf16)
      conv_bias_add_kernel<<<grid_for(op.ctx, total), kThreads, 0, op.stream()>>>(y.data<__nv_bfloat16>(),
                                                                                b.data<float>(), g.k, pq, total);
    else
      conv_bias_add_kernel<<<grid_for(op.ctx, total), kThreads, 0, op.stream()>>>(y.data<float>(), b.data<float>(),
                                                                                g.k, pq, total);
    DP_CUDA_CHECK_LAUNCH();
  } else if (b.defined()) {
    TensorDesc bd(1, g.k, 1, 1);
    DP_CUDNN_CHECK(cudnnAddTensor(h, &one, bd.d, b.raw_data(), &one, d.y.d, y.raw_data()));
  }
}

void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) {
  check_dtypes("conv2d_backward_data", dy, Tensor());
  if (dx.numel() == 0) return;
  check_sizes(g);
  OpScope op(dy);
  ConvDescs d(g, dy.dtype(), dx.is_channels_last());
  AlgoChoice c = choose(op.ctx, d, g, Pass::BackwardData, nullptr, w.raw_data(), dy.raw_data(), dx.raw_data());
  DP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, c.math));
  const float one = 1.f, zero = 0.f;
  void* ws = c.workspace ? op.ctx.workspace(c.workspace) : nullptr;
  DP_CUDNN_CHECK(cudnnConvolutionBackwardData(op.ctx.cudnn(), &one, d.w.d, w.raw_data(), d.y.d, dy.raw_data(),
                                              d.conv.d, static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), ws,
                                              c.workspace, &zero, d.x.d, dx.raw_data()));
}

void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db, const Conv2dGeometry& g) {
  check_dtypes("conv2d_backward_weight", x, db);
  check_sizes(g);
  OpScope op(x);
  ConvDescs d(g, x.dtype(), x.is_channels_last());
  cudnnHandle_t h = op.ctx.cudnn();
  const float one = 1.f, zero = 0.f;
  if (dw.numel() > 0) {
    AlgoChoice c = choose(op.ctx, d, g, Pass::BackwardFilter, x.raw_data(), nullptr, dy.raw_data(), dw.raw_data());
    DP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, c.math));
    void* ws = c.workspace ? op.ctx.workspace(c.workspace) : nullptr;
    DP_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, d.x.d, x.raw_data(), d.y.d, dy.raw_data(), d.conv.d,
                                                  static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), ws,
                                                  c.workspace, &zero, d.w.d, dw.raw_data()));
  }
  if (db.defined() && db.numel() > 0 && d.nhwc) {
    bias_grad_nhwc(op, dy, db, g);
  } else if (db.defined() && db.numel() > 0 && d.bf16) {
    conv_bias_grad_kernel<<<static_cast<unsigned>(g.k), kThreads, 0, op.stream()>>>(
        dy.data<__nv_bfloat16>(), db.data<float>(), g.n, g.k, g.p * g.q);
    DP_CUDA_CHECK_LAUNCH();
  } else if (db.defined() && db.numel() > 0) {
    TensorDesc bd(1, g.k, 1, 1);
    DP_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, &one, d.y.d, dy.raw_data(), &zero, bd.d, db.raw_data()));
  }
}

}  // namespace dp::kernels::cuda
