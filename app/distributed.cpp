#include "app/distributed.h"

#include <fmt/format.h>

#include "engine/error.h"
#include "layers/layers.h"

namespace dp::app {

Device DistributedRun::device_for_rank(Device requested, const dist::ProcessGroup& group) {
  if (!group.distributed() || !requested.is_cuda()) return requested;
  return Device::cuda(group.local_rank);
}

void DistributedRun::check_batch_size(int64_t batch_size, const dist::ProcessGroup& group) {
  DP_CHECK(batch_size % group.world_size == 0,
           fmt::format("optim.batch_size = {} cannot be shared by the {} processes of this job", batch_size,
                       group.world_size),
           fmt::format("optim.batch_size is the global batch (each rank takes batch_size / ranks): make it a "
                       "multiple of {}, e.g. {}",
                       group.world_size, (batch_size / group.world_size + 1) * group.world_size));
}

DistributedRun::DistributedRun(layers::Module& model, train::FlatParameters& flat, Device device,
                               const DistributedOptions& options)
    : group_(dist::process_group()), model_(model) {
  device_comm_ = dist::make_communicator(device, options.timeout_s);
  // Host-side sums (evaluation, logged totals): MPI's on CUDA, the one communicator on the CPU.
  if (!device.is_cpu()) host_comm_ = dist::make_communicator(Device::cpu(), options.timeout_s);
  train::DataParallelOptions dp;
  dp.allreduce_dtype = options.allreduce_dtype;
  sync_ = std::make_unique<train::DataParallelSync>(*device_comm_, flat, dp);
  if (options.sync_batchnorm) {
    bn_sync_ = std::make_shared<kernels::BatchNormSync>();
    dist::Communicator& comm = *device_comm_;  // the statistics stay on the model's device
    bn_sync_->all_reduce_sum = [&comm](Tensor& t) { comm.all_reduce(t); };
    bn_sync_->local_weight = 1.0 / group_.world_size;
    for (auto& [name, m] : model.named_modules())
      if (auto* bn = dynamic_cast<layers::BatchNorm2d*>(m)) bn->sync = bn_sync_;
  }
}

void DistributedRun::begin_step(const data::Loader& loader, int64_t batch_index) {
  std::vector<int64_t> split = loader.batch_split(batch_index);
  int64_t total = 0;
  for (int64_t c : split) total += c;
  if (bn_sync_) bn_sync_->local_weight = static_cast<double>(split[group_.rank]) / static_cast<double>(total);
  sync_->set_batch_split(std::move(split));
}

void DistributedRun::broadcast_batchnorm_statistics() {
  if (bn_sync_) return;  // identical on every rank already
  for (auto& [name, t] : model_.named_buffers()) {
    if (name.find("running_") == std::string::npos) continue;
    Tensor buffer = t;
    device_comm_->broadcast(buffer, 0);
  }
}

train::StepTotals DistributedRun::sum_over_ranks(const train::StepTotals& local) {
  dist::Communicator& host = host_communicator();
  Tensor counts = Tensor::from_vector(std::vector<int64_t>{local.top1, local.top5, local.samples}, {3});
  host.all_reduce(counts);
  const int64_t* c = counts.data<int64_t>();
  train::StepTotals global;
  global.top1 = c[0];
  global.top5 = c[1];
  global.samples = c[2];
  global.loss_sum = dist::sum_in_rank_order(host, local.loss_sum);
  return global;
}

int64_t DistributedRun::sum_over_ranks(int64_t local) {
  Tensor t = Tensor::from_vector(std::vector<int64_t>{local}, {1});
  host_communicator().all_reduce(t);
  return t.data<int64_t>()[0];
}

}  // namespace dp::app
