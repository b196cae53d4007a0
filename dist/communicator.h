// Collectives between the processes (ranks) of a data-parallel run, over tensors of one device.
//
// One interface, two backends: MPI for CPU tensors (also how CI tests the whole data-parallel path
// on a machine without GPUs) and NCCL for CUDA tensors. Every rank must make the same calls in the
// same order with the same shapes; a collective that a peer never joins is ended by the watchdog
// (run.dist_timeout_s) instead of hanging.
//
// Ordering: the CPU backend returns when the result is in place. The NCCL backend runs on its own
// stream, ordered after the work already queued on the device's compute stream and before any work
// queued there later (events), so the caller never waits on the host.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dp::dist {

enum class ReduceOp { Sum, Avg };

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual Device device() const = 0;  // the device of the tensors it takes
  virtual const char* backend() const = 0;

  // In place: every rank ends with the elementwise sum (or mean) over ranks. Floating types, int64.
  virtual void all_reduce(Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  // Every rank's `local` (same dtype and trailing shape; counts[r] rows along dim 0 on rank r)
  // concatenated in rank order. counts is the same list on every rank; empty: exchanged first
  // (on CUDA that costs a host wait).
  virtual Tensor all_gather(const Tensor& local, std::vector<int64_t> counts = {}) = 0;
  // In place: every rank ends with root's values.
  virtual void broadcast(Tensor& t, int root = 0) = 0;
  virtual void barrier() = 0;
};

// Rows per rank (dim 0 of `local` on each rank) exchanged over the communicator.
std::vector<int64_t> exchange_counts(Communicator& comm, int64_t local_rows);

// The sum over ranks of one host value, the same bits on every rank: the values are gathered and
// added in rank order (an all-reduce's order may depend on the algorithm, and so on the rank).
double sum_in_rank_order(Communicator& comm, double local);

}  // namespace dp::dist
