#include "train/data_parallel.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "engine/autograd.h"
#include "engine/error.h"
#include "kernels/ops.h"

namespace dp::train {

DataParallelSync::DataParallelSync(dist::Communicator& comm, FlatParameters& flat, DataParallelOptions options)
    : comm_(comm), flat_(flat), options_(options) {
  DP_CHECK(flat_.size() > 0, "DataParallelSync: the model has no parameters", "pass the optimiser's flat storage");
  DP_CHECK(options_.allreduce_dtype == DType::Float32 || options_.allreduce_dtype == DType::BFloat16,
           fmt::format("DataParallelSync: gradients cannot be all-reduced in {}", dtype_name(options_.allreduce_dtype)),
           "use float32 or bfloat16");
  const Device device = flat_.grads().device();
  DP_CHECK(device == comm_.device(),
           fmt::format("DataParallelSync: gradients on {} but the {} communicator takes {} tensors", device.str(),
                       comm_.backend(), comm_.device().str()),
           "make the communicator for the model's device");
  // Reverse registration order: the output layers' gradients are final first in backward. Each
  // bucket is the range from its first (lowest) parameter's offset to the end of its last one.
  int64_t end = flat_.total();
  Bucket current;
  for (size_t k = flat_.size(); k-- > 0;) {
    const int64_t begin = flat_.offset(k);
    if (current.params > 0 && (end - begin) * 4 > options_.bucket_bytes) {
      current.length = end - current.begin;
      end = current.begin;
      buckets_.push_back(current);
      current = Bucket();
    }
    current.begin = begin;
    ++current.params;
    bucket_of_[flat_.params()[k].impl()] = buckets_.size();
  }
  if (current.params > 0) {
    current.length = end - current.begin;
    buckets_.push_back(current);
  }
  for (Bucket& bk : buckets_) bk.pending = bk.params;
}

void DataParallelSync::set_batch_split(std::vector<int64_t> rows_per_rank) {
  DP_CHECK(rows_per_rank.empty() || static_cast<int>(rows_per_rank.size()) == comm_.world_size(),
           fmt::format("set_batch_split: {} counts for {} ranks", rows_per_rank.size(), comm_.world_size()),
           "pass one count per rank (data::Loader::batch_split)");
  split_ = std::move(rows_per_rank);
}

bool DataParallelSync::even_split() const {
  return split_.empty() || std::all_of(split_.begin(), split_.end(), [&](int64_t c) { return c == split_[0]; });
}

double DataParallelSync::local_weight(int64_t local_rows) const {
  if (split_.empty()) return 1.0 / comm_.world_size();
  const int64_t total = std::accumulate(split_.begin(), split_.end(), int64_t{0});
  DP_CHECK(split_[comm_.rank()] == local_rows,
           fmt::format("rank {} has {} rows but the batch split gives it {}", comm_.rank(), local_rows,
                       split_[comm_.rank()]),
           "call set_batch_split with the loader's split of this step's batch");
  return static_cast<double>(local_rows) / static_cast<double>(total);
}

void DataParallelSync::before_backward() {
  for (Bucket& b : buckets_) b.pending = b.params;
  next_bucket_ = 0;
  in_backward_ = true;
}

void DataParallelSync::grad_ready(const Tensor& param) {
  auto it = bucket_of_.find(param.impl());
  if (it == bucket_of_.end() || !in_backward_) return;  // not a model parameter (e.g. an input)
  --buckets_[it->second].pending;
  const size_t before = next_bucket_;
  reduce_next_ready_buckets();
  reduced_early_ += static_cast<int64_t>(next_bucket_ - before);
}

void DataParallelSync::reduce_next_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending <= 0) reduce(buckets_[next_bucket_++]);
}

void DataParallelSync::reduce(Bucket& b) {
  NoGradGuard no_grad;
  // Rank r's loss is its local mean: weight it by b_r / B (an even split is a plain average).
  Tensor range = flat_.grads().narrow0(b.begin, b.length);
  if (options_.allreduce_dtype == DType::BFloat16) {
    // Weighted in float32 first (a bf16 average would round twice), then rounded, summed, widened.
    const double alpha = even_split() ? 1.0 / comm_.world_size() : local_weight(split_[comm_.rank()]);
    Tensor travelling = kernels::cast(kernels::mul(range, alpha), DType::BFloat16);
    comm_.all_reduce(travelling, dist::ReduceOp::Sum);
    range.copy_from(kernels::cast(travelling, DType::Float32));
    return;
  }
  if (even_split()) {
    comm_.all_reduce(range, dist::ReduceOp::Avg);
    return;
  }
  const double alpha = local_weight(split_[comm_.rank()]);
  kernels::add_(range, kernels::mul(range, alpha - 1.0), 1.0);  // range ← alpha·range, on the stream
  comm_.all_reduce(range, dist::ReduceOp::Sum);
}

void DataParallelSync::finish_gradients() {
  // Buckets whose hooks did not fire (no hook, or parameters without a gradient) are reduced now,
  // in bucket order.
  for (Bucket& b : buckets_) b.pending = 0;
  reduce_next_ready_buckets();
  in_backward_ = false;
}

double DataParallelSync::row_gradient_scale(int64_t local_rows) { return local_weight(local_rows); }

void DataParallelSync::exchange_rows(Tensor& rows, Tensor& grads) {
  NoGradGuard no_grad;
  DP_CHECK(rows.dim() == 1 && grads.dim() == 1 && rows.numel() == grads.numel() && grads.dtype() == DType::Float32,
           fmt::format("exchange_rows: rows {} and grads {}", rows.str(), grads.str()),
           "pass int64 [b] rows and float32 [b] per-row gradients");
  std::vector<int64_t> counts = split_;
  if (counts.empty()) counts.assign(static_cast<size_t>(comm_.world_size()), rows.numel());
  rows = comm_.all_gather(rows, counts);
  grads = comm_.all_gather(grads, counts);
}

}  // namespace dp::train
