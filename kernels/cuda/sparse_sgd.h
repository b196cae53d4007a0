// CUDA launchers for the lazy per-row SparseSGD (contract: kernels/cpu/sparse_sgd.h).
//
// Duplicate rows: one block sorts the batch's (row, position) pairs in shared memory (bitonic),
// and the first position of each row sums that row's gradients in batch order and applies ONE
// update — the same float32 operations in the same order as the CPU version, so the two agree
// bit for bit, with no atomics. One block holds up to kSparseSgdMaxBatch rows.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/sparse_sgd.h"

namespace dp::kernels {

constexpr int64_t kSparseSgdMaxBatch = 8192;

// args.updated_rows is ignored on CUDA. When `clamp` is set, every updated row is clamped to
// [clamp_lo, clamp_hi] right after its update (equivalent to the SPEC's clamp of every entry
// once all entries have been clamped once: see train/data_parameters.h).
void sparse_sgd_step_cuda(const SparseSgdArgs& args, bool clamp, float clamp_lo, float clamp_hi,
                          cudaStream_t stream);

void clamp_all_cuda(float* param, int64_t num_rows, float lo, float hi, cudaStream_t stream);

// dense[rows[b]] += grads[b]. deterministic: coalesce in batch order first (same sums as the
// CPU), else one atomicAdd per row (order of duplicate additions unspecified).
void scatter_rows_to_dense_cuda(const int64_t* rows, const float* grads, int64_t n, float* dense,
                                int64_t dense_size, bool deterministic, cudaStream_t stream);

}  // namespace dp::kernels
