// The data-parallel part of a training step (StepSync, train/step_sync.h): N ranks together
// compute what one process computes on the global batch.
//
// Model gradients live in the optimiser's flat gradient buffer (train/flat_parameters.h). The
// parameters are grouped into buckets (reverse registration order, about what backward produces
// first; bucket_bytes each), each a contiguous range of that buffer. As the autograd hook reports
// a bucket's last gradient final, the range is all-reduced in place (on CUDA the NCCL stream runs
// it while backward continues): no copies. Buckets are reduced strictly in bucket order, so every
// rank issues the same collectives in the same order whatever order its hooks fire in.
//
// Scaling: each rank's loss is the mean over its local batch, the single process's the mean over
// the global batch; rank r's gradients are weighted by b_r / B (b_r its rows, B the global batch's),
// i.e. averaged when the split is even.
//
// Data parameters: each rank's per-row θ gradients come out of the loss already scaled by its
// batch share b_r / B (row_gradient_scale; the log-space weight-decay term is a per-row sum, not
// a mean, and is not scaled), and θ_class and θ_inst rows and per-row gradients are all-gathered
// in rank order, which is global batch order (the loader's sharding). Every rank then applies
// the same SparseSGD step to the same (rows, grads): θ stays bitwise equal across ranks, the
// exchange is O(global batch), and nothing goes through the host.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "dist/communicator.h"
#include "train/flat_parameters.h"
#include "train/step_sync.h"

namespace dp::train {

struct DataParallelOptions {
  int64_t bucket_bytes = 25 << 20;  // PyTorch DDP's default bucket_cap_mb
  // The type gradients travel in (run.allreduce_dtype). BFloat16 halves the bytes, like DDP's
  // bf16_compress_hook: each rank's share-weighted gradients are rounded to bf16, summed in bf16
  // and widened back into the float32 buffer (every rank gets the same bits).
  DType allreduce_dtype = DType::Float32;
};

class DataParallelSync final : public StepSync {
 public:
  // comm: for tensors on the parameters' device; flat: the model optimiser's storage (SGD::flat()).
  DataParallelSync(dist::Communicator& comm, FlatParameters& flat, DataParallelOptions options = {});

  // Rows of the coming step's global batch taken by each rank (data::Loader::batch_split). Not
  // set: an even split of this rank's batch size.
  void set_batch_split(std::vector<int64_t> rows_per_rank);

  double row_gradient_scale(int64_t local_rows) override;
  void before_backward() override;
  void grad_ready(const Tensor& param) override;
  void finish_gradients() override;
  void exchange_rows(Tensor& rows, Tensor& grads) override;
  bool capturable() const override { return false; }  // the MPI backend waits on the host

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  int64_t buckets_reduced_in_backward() const { return reduced_early_; }  // since construction

 private:
  struct Bucket {
    int64_t begin = 0, length = 0;  // range of the flat gradient buffer
    int64_t params = 0;             // parameters in it
    int64_t pending = 0;            // of which not yet reported final
  };
  void reduce_next_ready_buckets();
  void reduce(Bucket& b);
  double local_weight(int64_t local_rows) const;  // b_r / B
  bool even_split() const;

  dist::Communicator& comm_;
  FlatParameters& flat_;
  DataParallelOptions options_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const TensorImpl*, size_t> bucket_of_;  // parameter → its bucket
  size_t next_bucket_ = 0;
  bool in_backward_ = false;
  int64_t reduced_early_ = 0;
  std::vector<int64_t> split_;
};

}  // namespace dp::train
