// The sync_batch_norm family (kernels/sync_batch_norm.h): the phases of synchronised batch norm
// on CUDA against the CPU with a stand-in for the ranks. Its equality with one process's batch
// norm over the whole batch, on real ranks, is tested in tests/dist/test_sync_batch_norm.cpp.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <vector>

#include "kernels/ops.h"
#include "kernels/sync_batch_norm.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

namespace dp {
namespace {

class SyncBatchNormCuda : public testing::CudaTestWithRng<2024, 5> {};

TEST_F(SyncBatchNormCuda, SyncBatchNormPhasesMatchTheCpu) {
  // Synchronised BN's kernels (moment sums, forward from sums, gradient sums, backward from sums)
  // with a stand-in for the ranks: two ranks holding the same batch (the "all-reduce" doubles the
  // sums; this rank's share is 1/2), so every scale of the phases is exercised. NCHW and
  // channels-last, with and without the fused ReLU; outputs and gradients against the CPU.
  kernels::BatchNormSync sync;
  sync.all_reduce_sum = [](Tensor& t) { t.copy_from(kernels::mul(t, 2.0)); };
  sync.local_weight = 0.5;
  for (bool relu : {false, true})
    for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
      SCOPED_TRACE(fmt::format("relu {} channels-last {}", relu, format == MemoryFormat::ChannelsLast));
      Tensor x = rand({6, 5, 7, 9}, -2.0, 3.0), gamma = rand({5}, 0.5, 1.5), beta = rand({5});
      EXPECT_TRUE(testing::matches_cpu(
          Device::cuda(),
          [&](const std::vector<Tensor>& in) {
            return kernels::sync_batch_norm(kernels::to_memory_format(in[0], format), in[1], in[2], Tensor(), Tensor(),
                                            0.1, 1e-5, relu, sync);
          },
          {x, gamma, beta}, testing::Tolerance::fp32_reordered()));
    }
}

}  // namespace
}  // namespace dp
