// C = alpha·op(A)·op(B) + beta·C for row-major 2-D tensors (op = transpose when asked).
// CPU: OpenBLAS; CUDA: cuBLAS (TF32 unless strict float32 is requested).
#pragma once
#include "engine/tensor.h"

#define DP_GEMM_KERNELS                                                                     \
  void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b,     \
            double beta, Tensor& c);                                                        \
  void bias_add_rows(Tensor& y, const Tensor& bias); /* y[n, j] += bias[j] */                \
  void sum_rows(const Tensor& dy, Tensor& db);       /* db[j] = sum_n dy[n, j] */

namespace dp::kernels::cpu { DP_GEMM_KERNELS }
#ifdef DP_WITH_CUDA
namespace dp::kernels::cuda { DP_GEMM_KERNELS }
#endif
#undef DP_GEMM_KERNELS
