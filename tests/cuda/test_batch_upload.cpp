// BatchUploader on CUDA: batches in page-locked buffers (the loader's pool) queued without
// waiting through the two staging slots and the copy stream, each checked against its values
// after the device caught up: slot reuse, a smaller and a larger batch (staging regrown), both
// memory formats and a one-channel batch (whose formats coincide).
#include <gtest/gtest.h>

#include "engine/cuda/pinned_pool.h"
#include "train/batch_upload.h"

using namespace dp;

namespace {

data::Batch make_batch(int64_t n, int64_t c, int64_t h, int64_t w, float base, const data::HostAllocator& alloc) {
  data::Batch b;
  b.n = n;
  b.c = c;
  b.h = h;
  b.w = w;
  const size_t count = static_cast<size_t>(n * c * h * w);
  b.external = std::shared_ptr<float>(alloc.allocate(count), [alloc, count](float* p) { alloc.deallocate(p, count); });
  for (size_t i = 0; i < count; ++i) b.data()[i] = base + static_cast<float>(i);
  for (int64_t i = 0; i < n; ++i) {
    b.labels.push_back(static_cast<int64_t>(base) + i);
    b.indices.push_back(1000 * static_cast<int64_t>(base) + i);
  }
  return b;
}

TEST(CudaBatchUpload, QueuedBatchesArriveIntact) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: asynchronous upload not run";
  const data::HostAllocator alloc = train::batch_memory_for(Device::cuda());
  ASSERT_TRUE(static_cast<bool>(alloc.allocate)) << "CUDA runs use page-locked batch memory";
  const int64_t sizes[] = {4, 4, 4, 4, 3, 6, 4, 4};
  for (int64_t channels : {3, 1})
    for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
      SCOPED_TRACE(std::string(memory_format_name(format)) + ", channels " + std::to_string(channels));
      train::BatchUploader uploader(Device::cuda(), format);
      std::vector<train::BatchTensors> uploaded;
      for (int k = 0; k < 8; ++k) uploaded.push_back(uploader.upload(make_batch(sizes[k], channels, 5, 6, 10.0f * k, alloc)));
      for (int k = 0; k < 8; ++k) {
        SCOPED_TRACE(k);
        const train::BatchTensors& t = uploaded[static_cast<size_t>(k)];
        ASSERT_EQ(t.images.shape(), (Shape{sizes[k], channels, 5, 6}));
        EXPECT_EQ(t.images.is_channels_last(), format == MemoryFormat::ChannelsLast && channels > 1);
        std::vector<float> images = t.images.to_float_vector();  // logical NCHW order
        for (size_t i = 0; i < images.size(); ++i) ASSERT_EQ(images[i], 10.0f * k + static_cast<float>(i));
        std::vector<double> labels = t.labels.to_double_vector(), indices = t.indices.to_double_vector();
        for (int64_t i = 0; i < sizes[k]; ++i) {
          EXPECT_EQ(labels[static_cast<size_t>(i)], 10.0 * k + i);
          EXPECT_EQ(indices[static_cast<size_t>(i)], 10000.0 * k + i);
        }
      }
    }
}

}  // namespace
