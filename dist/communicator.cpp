#include "dist/communicator.h"

#include <fmt/format.h>

#include <cstring>

#include "dist/mpi_communicator.h"
#include "dist/nccl_communicator.h"
#include "dist/process_group.h"

namespace dp::dist {

namespace {

// World size 1: every collective is the identity (all_gather returns a copy).
class SingleProcessCommunicator final : public Communicator {
 public:
  explicit SingleProcessCommunicator(Device device) : device_(device) {}
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  Device device() const override { return device_; }
  const char* backend() const override { return "single-process"; }
  void all_reduce(Tensor&, ReduceOp) override {}
  Tensor all_gather(const Tensor& local, std::vector<int64_t> counts) override {
    DP_CHECK(counts.empty() || (counts.size() == 1 && counts[0] == (local.dim() ? local.size(0) : 1)),
             "all_gather: counts do not match the one rank's rows", "pass {rows} or nothing");
    return local.clone();
  }
  void broadcast(Tensor&, int root) override {
    DP_CHECK(root == 0, fmt::format("broadcast from rank {} in a one-process job", root), "use root 0");
  }
  void barrier() override {}

 private:
  Device device_;
};

}  // namespace

std::vector<int64_t> exchange_counts(Communicator& comm, int64_t local_rows) {
  Tensor mine = Tensor::from_vector(std::vector<int64_t>{local_rows}, {1}).to(comm.device());
  std::vector<int64_t> one(static_cast<size_t>(comm.world_size()), 1);
  Tensor all = comm.all_gather(mine, one).to(Device::cpu());
  const int64_t* p = all.data<int64_t>();
  return std::vector<int64_t>(p, p + all.numel());
}

double sum_in_rank_order(Communicator& comm, double local) {
  Tensor mine = Tensor::from_vector(std::vector<double>{local}, {1}).to(comm.device());
  std::vector<int64_t> one(static_cast<size_t>(comm.world_size()), 1);
  const std::vector<double> all = comm.all_gather(mine, one).to_double_vector();
  double sum = 0.0;
  for (double v : all) sum += v;
  return sum;
}

std::unique_ptr<Communicator> make_communicator(Device device, double timeout_s) {
  const ProcessGroup& g = process_group();
  if (!g.distributed()) return std::make_unique<SingleProcessCommunicator>(device);
  if (device.is_cpu()) return make_mpi_communicator(timeout_s);
  return make_nccl_communicator(device, timeout_s);
}

}  // namespace dp::dist
