// CUDA 2-D convolution through cuDNN (contract: kernels/conv2d.h), NCHW float32.
//
// The algorithm for each (shape, pass, math mode) is chosen once, by cuDNN's heuristics or, with
// dp::cuda::set_cudnn_benchmark(true), by timing the candidates (cudnnFind*), and cached with its
// workspace size; later calls only look the choice up. Workspace memory is the context's
// scratch buffer, which grows to the largest need and stays (no allocation in the step).
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/conv2d.h"
#include "kernels/cuda/common.cuh"

namespace dp::cuda {

namespace {

using detail::OpScope;

// Algorithms needing more scratch than this are skipped (cuDNN offers leaner ones).
constexpr size_t kMaxWorkspace = size_t{1} << 30;

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(int64_t n, int64_t c, int64_t h, int64_t w) {
    DP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
    DP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, static_cast<int>(n),
                                              static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)));
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  explicit FilterDesc(const Conv2dGeometry& g) {
    DP_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
    DP_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, static_cast<int>(g.k),
                                              static_cast<int>(g.c), static_cast<int>(g.r), static_cast<int>(g.s)));
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  explicit ConvDesc(const Conv2dGeometry& g) {
    DP_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
    const int pad = static_cast<int>(g.pad), stride = static_cast<int>(g.stride);
    DP_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d, pad, pad, stride, stride, 1, 1,
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    DP_CUDNN_CHECK(cudnnSetConvolutionMathType(d, allow_tf32() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
};

// Everything cuDNN needs to describe one convolution.
struct ConvDescs {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  explicit ConvDescs(const Conv2dGeometry& g)
      : x(g.n, g.c, g.h, g.w), y(g.n, g.k, g.p, g.q), w(g), conv(g) {}
};

enum class Pass { Forward, BackwardData, BackwardFilter };

struct AlgoChoice {
  int algo = 0;
  size_t workspace = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

using AlgoKey = std::tuple<int, Pass, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t,
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
  const bool tf32 = allow_tf32(), bench = cudnn_benchmark();
  AlgoKey key{ctx.device(), pass, tf32, deterministic(), g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.stride, g.pad};
  {
    std::lock_guard<std::mutex> lock(g_cache_mutex);
    auto it = g_algo_cache.find(key);
    if (it != g_algo_cache.end()) return it->second;
  }
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

void check_sizes(const Conv2dGeometry& g) {
  for (int64_t v : {g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.p, g.q})
    DP_CHECK(v <= INT32_MAX, "conv2d: a dimension exceeds cuDNN's 32-bit sizes",
             "split the batch into smaller pieces");
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, const Conv2dGeometry& g) {
  DP_CUDA_REQUIRE_FLOAT32("conv2d", x);
  if (y.numel() == 0) return;
  check_sizes(g);
  OpScope op(x);
  ConvDescs d(g);
  AlgoChoice c = choose(op.ctx, d, g, Pass::Forward, x.raw_data(), w.raw_data(), nullptr, y.raw_data());
  DP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, c.math));
  const float one = 1.f, zero = 0.f;
  cudnnHandle_t h = op.ctx.cudnn();
  void* ws = c.workspace ? op.ctx.workspace(c.workspace) : nullptr;
  DP_CUDNN_CHECK(cudnnConvolutionForward(h, &one, d.x.d, x.raw_data(), d.w.d, w.raw_data(), d.conv.d,
                                         static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws, c.workspace,
                                         &zero, d.y.d, y.raw_data()));
  if (b.defined()) {
    TensorDesc bd(1, g.k, 1, 1);
    DP_CUDNN_CHECK(cudnnAddTensor(h, &one, bd.d, b.raw_data(), &one, d.y.d, y.raw_data()));
  }
}

void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) {
  DP_CUDA_REQUIRE_FLOAT32("conv2d_backward_data", dy);
  if (dx.numel() == 0) return;
  check_sizes(g);
  OpScope op(dy);
  ConvDescs d(g);
  AlgoChoice c = choose(op.ctx, d, g, Pass::BackwardData, nullptr, w.raw_data(), dy.raw_data(), dx.raw_data());
  DP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, c.math));
  const float one = 1.f, zero = 0.f;
  void* ws = c.workspace ? op.ctx.workspace(c.workspace) : nullptr;
  DP_CUDNN_CHECK(cudnnConvolutionBackwardData(op.ctx.cudnn(), &one, d.w.d, w.raw_data(), d.y.d, dy.raw_data(),
                                              d.conv.d, static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), ws,
                                              c.workspace, &zero, d.x.d, dx.raw_data()));
}

void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db, const Conv2dGeometry& g) {
  DP_CUDA_REQUIRE_FLOAT32("conv2d_backward_weight", x);
  check_sizes(g);
  OpScope op(x);
  ConvDescs d(g);
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
  if (db.defined() && db.numel() > 0) {
    TensorDesc bd(1, g.k, 1, 1);
    DP_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, &one, d.y.d, dy.raw_data(), &zero, bd.d, db.raw_data()));
  }
}

}  // namespace dp::cuda
