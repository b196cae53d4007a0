// The differentiable ops: what layers, nets and users call. Each op checks its inputs,
// dispatches on the tensors' device to the CPU or CUDA kernel family declared in
// kernels/<family>.h, and records an autograd node when an input requires grad.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace dp::kernels {

// Under dp::AutocastGuard(DType::BFloat16) (engine/autocast.h, CUDA only) conv2d, linear and
// matmul run in bf16 on tensor cores and return bf16; batch_norm, relu, add, pooling and dropout
// accept bf16 activations (BN parameters and statistics stay float32); cross_entropy always
// computes a bf16 input in float32. Gradients come back in the dtype of each input.

// ---- elementwise and reductions (kernels/elementwise.h) ----
void fill_(Tensor& t, double value);             // in place, no autograd
Tensor cast(const Tensor& x, DType dtype);       // no autograd
// Differentiable conversion: backward casts the gradient back to x's dtype (autocast's casts).
Tensor to_dtype(const Tensor& x, DType dtype);

// ---- memory formats (kernels/layout.h) ----
// Every op keeps its input's memory format: a channels-last batch flows through conv, batch
// norm, relu, add and pooling channels-last, and gradients come back in each input's format.
// CUDA runs those ops on NHWC natively; the CPU converts to NCHW around its kernels (same
// results, it is the reference). add() of mixed formats computes in the first operand's.
// x in `dtype` and `format`, no autograd (x itself when nothing changes).
Tensor convert(const Tensor& x, DType dtype, MemoryFormat format);
// Differentiable memory-format change (x itself when already in `format`).
Tensor to_memory_format(const Tensor& x, MemoryFormat format);
inline Tensor contiguous(const Tensor& x) { return to_memory_format(x, MemoryFormat::Contiguous); }
Tensor add(const Tensor& a, const Tensor& b);    // same shapes
Tensor add_relu(const Tensor& a, const Tensor& b);  // relu(a + b) in one pass (residual blocks)
Tensor mul(const Tensor& x, double scalar);
// x · s with s a one-element tensor on x's device, read there (no host wait); no autograd: for
// backward rules scaling by their upstream gradient.
Tensor scale_by(const Tensor& x, const Tensor& s);
Tensor relu(const Tensor& x);
Tensor sum(const Tensor& x);                     // all elements -> scalar
Tensor mean(const Tensor& x);                    // all elements -> scalar
void add_(Tensor& dst, const Tensor& src, double alpha = 1.0);  // dst += alpha*src, no autograd

// ---- shape ----
Tensor reshape(const Tensor& x, const Shape& shape);  // shares storage (copies a channels-last x)
Tensor flatten(const Tensor& x, int64_t start_dim = 1);

// ---- dense layers (kernels/gemm.h, kernels/linear.h) ----
Tensor matmul(const Tensor& a, const Tensor& b);  // [M,K] x [K,N] -> [M,N]
// y = x · wᵀ + b with x [N,in], w [out,in], b [out] or undefined (PyTorch's layout).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);

// ---- convolution (kernels/conv2d.h): x [N,C,H,W], w [K,C,R,S], b [K] or undefined ----
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride = 1,
              int64_t padding = 0);

// ---- batch normalisation (kernels/batch_norm.h) ----
// Training: normalises with the batch statistics and, when running_mean/var are defined,
// updates them in place with PyTorch's convention: running = (1-momentum)·running +
// momentum·batch, with the unbiased batch variance. Eval: uses the running statistics.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                  Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5);
// relu(batch_norm(...)) in one pass each way (same values and gradients as the two ops).
Tensor batch_norm_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5);

// ---- pooling (kernels/pooling.h) ----
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding = 0);
// count_include_pad = true, like PyTorch's default.
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding = 0);
Tensor global_avg_pool(const Tensor& x);  // [N,C,H,W] -> [N,C]

// ---- loss (kernels/softmax_ce.h) ----
// Mean softmax cross-entropy of logits [B,C] against int64 labels [B].
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);

// counts (int64 [2], on the logits' device) += the batch's top-1 and top-5 correct counts;
// no copy to the host (kernels/topk.h).
void topk_correct_(Tensor& counts, const Tensor& logits, const Tensor& labels);

// ---- dropout (kernels/dropout.h) ----
// Zeroes each element with probability p and scales the rest by 1/(1-p). The mask is a pure
// function of (seed, stream, element index) through Philox, so CPU and CUDA agree.
Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed, uint64_t stream);

}  // namespace dp::kernels
