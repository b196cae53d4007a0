#include "dist/mpi_communicator.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <numeric>

#include "dist/process_group.h"
#include "dist/watchdog.h"
#include "engine/error.h"

#ifdef DP_WITH_MPI
#include <mpi.h>
#endif

namespace dp::dist {

#ifdef DP_WITH_MPI

namespace {

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  DP_THROW(fmt::format("MPI {} failed on rank {}: {}", what, process_group().rank, std::string(text, length)),
           "another rank has probably failed; see its output");
}

MPI_Datatype mpi_type(DType t, const char* op) {
  switch (t) {
    case DType::Float32: return MPI_FLOAT;
    case DType::Float64: return MPI_DOUBLE;
    case DType::Int64: return MPI_INT64_T;
    case DType::Int32: return MPI_INT32_T;
    case DType::UInt8: return MPI_UINT8_T;
    case DType::BFloat16: return MPI_UINT16_T;  // summed by bf16_sum_op()
    case DType::Float16: break;
  }
  DP_THROW(fmt::format("{}: no MPI reduction for {} tensors", op, dtype_name(t)),
           "reduce float32/float64/bfloat16/int64 tensors");
}

// MPI has no bf16 type: bf16 values travel as 16-bit words and are summed by this op, each
// pairwise sum in float32 rounded back to bf16 (what NCCL does for ncclBfloat16).
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const bfloat16*>(in);
  auto* b = static_cast<bfloat16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = bfloat16(static_cast<float>(a[i]) + static_cast<float>(b[i]));
}

MPI_Op sum_op(DType t) {
  if (t != DType::BFloat16) return MPI_SUM;
  static MPI_Op op = [] {
    MPI_Op created;
    check_mpi(MPI_Op_create(&bf16_sum, /*commute=*/1, &created), "MPI_Op_create");
    return created;
  }();
  return op;
}

// MPI counts are int: large buffers go in chunks.
constexpr int64_t kChunk = INT_MAX / 2;

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_s)
      : rank_(process_group().rank), world_(process_group().world_size), watchdog_(rank_, timeout_s) {}
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  Device device() const override { return Device::cpu(); }
  const char* backend() const override { return "mpi"; }

  void all_reduce(Tensor& t, ReduceOp op) override {
    check_cpu(t, "all_reduce");
    if (t.numel() == 0) return;
    MPI_Datatype type = mpi_type(t.dtype(), "all_reduce");
    CollectiveWatchdog::Guard guard(watchdog_, "all_reduce");
    char* base = static_cast<char*>(t.raw_data());
    const size_t esize = dtype_size(t.dtype());
    for (int64_t at = 0; at < t.numel(); at += kChunk) {
      const int n = static_cast<int>(std::min<int64_t>(kChunk, t.numel() - at));
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, base + static_cast<size_t>(at) * esize, n, type, sum_op(t.dtype()),
                              MPI_COMM_WORLD),
                "MPI_Allreduce");
    }
    if (op == ReduceOp::Avg) divide(t);
    t.bump_version();
  }

  Tensor all_gather(const Tensor& local, std::vector<int64_t> counts) override {
    check_cpu(local, "all_gather");
    DP_CHECK(local.dim() >= 1, "all_gather: needs a tensor with a row dimension", "gather [rows, ...] tensors");
    if (counts.empty()) counts = exchange_counts(*this, local.size(0));
    DP_CHECK(static_cast<int>(counts.size()) == world_ && counts[rank_] == local.size(0),
             fmt::format("all_gather: rank {} has {} rows but counts say {}", rank_, local.size(0),
                         counts.size() == static_cast<size_t>(world_) ? counts[rank_] : -1),
             "pass one count per rank, the same list on every rank");
    const int64_t row_bytes = local.size(0) ? static_cast<int64_t>(local.nbytes()) / local.size(0)
                                            : static_cast<int64_t>(dtype_size(local.dtype())) *
                                                  shape_numel(Shape(local.shape().begin() + 1, local.shape().end()));
    Shape out_shape = local.shape();
    out_shape[0] = std::accumulate(counts.begin(), counts.end(), int64_t{0});
    Tensor out = Tensor::empty(out_shape, local.dtype());
    std::vector<int> byte_counts(world_), displs(world_);
    int64_t offset = 0;
    for (int r = 0; r < world_; ++r) {
      const int64_t bytes = counts[r] * row_bytes;
      DP_CHECK(offset + bytes <= INT_MAX, "all_gather: more than 2 GiB gathered in one call",
               "gather in smaller pieces");
      byte_counts[r] = static_cast<int>(bytes);
      displs[r] = static_cast<int>(offset);
      offset += bytes;
    }
    CollectiveWatchdog::Guard guard(watchdog_, "all_gather");
    check_mpi(MPI_Allgatherv(local.raw_data(), byte_counts[rank_], MPI_BYTE, out.raw_data(), byte_counts.data(),
                             displs.data(), MPI_BYTE, MPI_COMM_WORLD),
              "MPI_Allgatherv");
    return out;
  }

  void broadcast(Tensor& t, int root) override {
    check_cpu(t, "broadcast");
    DP_CHECK(root >= 0 && root < world_, fmt::format("broadcast: root {} is not a rank of {}", root, world_), "");
    CollectiveWatchdog::Guard guard(watchdog_, "broadcast");
    char* base = static_cast<char*>(t.raw_data());
    const auto total = static_cast<int64_t>(t.nbytes());
    for (int64_t at = 0; at < total; at += kChunk)
      check_mpi(MPI_Bcast(base + at, static_cast<int>(std::min<int64_t>(kChunk, total - at)), MPI_BYTE, root,
                          MPI_COMM_WORLD),
                "MPI_Bcast");
    t.bump_version();
  }

  void barrier() override {
    CollectiveWatchdog::Guard guard(watchdog_, "barrier");
    check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  }

 private:
  static void check_cpu(const Tensor& t, const char* op) {
    DP_CHECK(t.defined(), fmt::format("{}: undefined tensor", op), "pass a tensor");
    DP_CHECK(t.device().is_cpu(), fmt::format("{}: the MPI communicator takes CPU tensors, got {}", op, t.str()),
             "use the NCCL communicator (make_communicator(cuda device)) for CUDA tensors");
  }
  void divide(Tensor& t) const {
    const double w = static_cast<double>(world_);
    switch (t.dtype()) {
      case DType::Float32: {
        float* p = t.data<float>();
        for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(p[i] / w);
        break;
      }
      case DType::Float64: {
        double* p = t.data<double>();
        for (int64_t i = 0; i < t.numel(); ++i) p[i] /= w;
        break;
      }
      default:
        DP_THROW(fmt::format("all_reduce(Avg) of a {} tensor", dtype_name(t.dtype())),
                 "average floating-point tensors; sum integers");
    }
  }

  int rank_, world_;
  CollectiveWatchdog watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s) {
  return std::make_unique<MpiCommunicator>(timeout_s);
}

void mpi_broadcast_bytes(void* data, size_t nbytes, int root) {
  check_mpi(MPI_Bcast(data, static_cast<int>(nbytes), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
}

#else

std::unique_ptr<Communicator> make_mpi_communicator(double) {
  DP_THROW("this build has no MPI", "reconfigure with -Dmpi=enabled after installing libopenmpi-dev");
}

void mpi_broadcast_bytes(void*, size_t, int) {
  DP_THROW("this build has no MPI", "reconfigure with -Dmpi=enabled after installing libopenmpi-dev");
}

#endif

}  // namespace dp::dist
