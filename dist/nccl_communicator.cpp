// NCCL collectives on their own stream, ordered against the device's compute stream by events:
// compute → (event) → NCCL stream runs the collective → (event) → compute continues. Nothing
// waits on the host. A watchdog thread polls the last collective's completion event and, when it
// has not completed within run.dist_timeout_s, aborts the NCCL communicator and the job.
#include "dist/nccl_communicator.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <numeric>
#include <thread>

#include "dist/mpi_communicator.h"
#include "dist/process_group.h"
#include "engine/error.h"

#if defined(DP_WITH_CUDA) && defined(DP_WITH_NCCL)
#include <nccl.h>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#endif

namespace dp::dist {

#if defined(DP_WITH_CUDA) && defined(DP_WITH_NCCL)

namespace {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::Float32: return ncclFloat32;
    case DType::Float64: return ncclFloat64;
    case DType::BFloat16: return ncclBfloat16;
    case DType::Float16: return ncclFloat16;
    case DType::Int64: return ncclInt64;
    case DType::Int32: return ncclInt32;
    case DType::UInt8: return ncclUint8;
  }
  return ncclUint8;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Device device, double timeout_s)
      : device_(device), rank_(process_group().rank), world_(process_group().world_size), timeout_(timeout_s) {
    cuda::DeviceGuard guard(device_.index);
    ncclUniqueId id;
    if (rank_ == 0) DP_NCCL_CHECK(ncclGetUniqueId(&id));
    if (world_ > 1) mpi_broadcast_bytes(&id, sizeof(id), 0);  // one rank needs no MPI
    DP_NCCL_CHECK(ncclCommInitRank(&comm_, world_, id, rank_));
    DP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    DP_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    DP_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    watchdog_ = std::thread([this] { watch(); });
  }
  ~NcclCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
    cudaStreamSynchronize(stream_);
    ncclCommDestroy(comm_);
    cudaEventDestroy(ready_);
    cudaEventDestroy(done_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  Device device() const override { return device_; }
  const char* backend() const override { return "nccl"; }

  void all_reduce(Tensor& t, ReduceOp op) override {
    check(t, "all_reduce");
    if (t.numel() == 0) return;
    run("all_reduce", [&] {
      DP_NCCL_CHECK(ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()),
                                  op == ReduceOp::Avg ? ncclAvg : ncclSum, comm_, stream_));
    });
    t.bump_version();
  }

  Tensor all_gather(const Tensor& local, std::vector<int64_t> counts) override {
    check(local, "all_gather");
    DP_CHECK(local.dim() >= 1, "all_gather: needs a tensor with a row dimension", "gather [rows, ...] tensors");
    if (counts.empty()) counts = exchange_counts(*this, local.size(0));
    DP_CHECK(static_cast<int>(counts.size()) == world_ && counts[rank_] == local.size(0),
             fmt::format("all_gather: rank {} has {} rows but counts disagree", rank_, local.size(0)),
             "pass one count per rank, the same list on every rank");
    const size_t row_bytes = dtype_size(local.dtype()) *
                             static_cast<size_t>(shape_numel(Shape(local.shape().begin() + 1, local.shape().end())));
    Shape out_shape = local.shape();
    out_shape[0] = std::accumulate(counts.begin(), counts.end(), int64_t{0});
    Tensor out = Tensor::empty(out_shape, local.dtype(), device_);
    const bool equal = std::all_of(counts.begin(), counts.end(), [&](int64_t c) { return c == counts[0]; });
    char* dst = static_cast<char*>(out.raw_data());
    run("all_gather", [&] {
      if (equal) {
        if (counts[0] > 0)
          DP_NCCL_CHECK(ncclAllGather(local.raw_data(), dst, row_bytes * static_cast<size_t>(counts[0]), ncclUint8,
                                      comm_, stream_));
        return;
      }
      // Variable sizes: one broadcast per rank into its slice, grouped into one launch.
      DP_NCCL_CHECK(ncclGroupStart());
      size_t offset = 0;
      for (int r = 0; r < world_; ++r) {
        const size_t bytes = row_bytes * static_cast<size_t>(counts[r]);
        if (bytes > 0)
          DP_NCCL_CHECK(ncclBroadcast(local.raw_data(), dst + offset, bytes, ncclUint8, r, comm_, stream_));
        offset += bytes;
      }
      DP_NCCL_CHECK(ncclGroupEnd());
    });
    return out;
  }

  void broadcast(Tensor& t, int root) override {
    check(t, "broadcast");
    if (t.numel() == 0) return;
    run("broadcast", [&] {
      DP_NCCL_CHECK(ncclBroadcast(t.raw_data(), t.raw_data(), t.nbytes(), ncclUint8, root, comm_, stream_));
    });
    t.bump_version();
  }

  void barrier() override {
    // A one-element all-reduce, waited for on the host: the only host wait of this backend.
    Tensor token = Tensor::zeros({1}, DType::Float32, device_);
    all_reduce(token, ReduceOp::Sum);
    DP_CUDA_CHECK(cudaStreamSynchronize(cuda::context(device_).stream()));
  }

 private:
  void check(const Tensor& t, const char* op) const {
    DP_CHECK(t.defined() && t.device() == device_,
             fmt::format("{}: the NCCL communicator of {} got {}", op, device_.str(), t.defined() ? t.str() : "none"),
             "pass tensors on this rank's GPU; CPU tensors go through the MPI communicator");
  }

  template <class F>
  void run(const char* what, F&& enqueue) {
    cuda::DeviceGuard guard(device_.index);
    cudaStream_t compute = cuda::context(device_).stream();
    DP_CUDA_CHECK(cudaEventRecord(ready_, compute));
    DP_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
    enqueue();
    DP_CUDA_CHECK(cudaEventRecord(done_, stream_));
    DP_CUDA_CHECK(cudaStreamWaitEvent(compute, done_, 0));
    std::lock_guard<std::mutex> lock(mutex_);
    last_ = what;
    last_at_ = std::chrono::steady_clock::now();
    ++issued_;
    cv_.notify_all();
  }

  // Polls the completion event of the newest collective; one that stays incomplete past the
  // timeout means a peer never joined it.
  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::seconds(1));
      if (stopping_ || issued_ == 0) continue;
      const cudaError_t state = cudaEventQuery(done_);
      if (state != cudaErrorNotReady) continue;
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_at_).count();
      if (waited < timeout_) continue;
      const std::string what = last_;
      lock.unlock();
      ncclCommAbort(comm_);
      abort_job_after_error(fmt::format("NCCL collective '{}' did not complete within run.dist_timeout_s = {} s: "
                                        "another rank has probably failed, stopped or hangs",
                                        what, timeout_),
                            3);
      return;
    }
  }

  Device device_;
  int rank_, world_;
  double timeout_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  std::mutex mutex_;
  std::condition_variable cv_;
  const char* last_ = "";
  std::chrono::steady_clock::time_point last_at_;
  uint64_t issued_ = 0;
  bool stopping_ = false;
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Device device, double timeout_s) {
  DP_CHECK(device.is_cuda(), "make_nccl_communicator needs a CUDA device", "use the MPI communicator on the CPU");
  return std::make_unique<NcclCommunicator>(device, timeout_s);
}

#else

std::unique_ptr<Communicator> make_nccl_communicator(Device device, double) {
  DP_THROW(fmt::format("data-parallel training on {} needs a build with CUDA (NCCL)", device.str()),
           "reconfigure with -Dcuda=enabled (and -Dmpi=enabled for more than one rank), or train on the CPU with "
           "the MPI backend");
}

#endif

}  // namespace dp::dist
