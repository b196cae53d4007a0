// Tensor basics, errors, the Philox generator (published known answers) and the thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "engine/rng.h"
#include "engine/allocator.h"
#include "engine/tensor.h"
#include "engine/thread_pool.h"

namespace dp {
namespace {

TEST(Tensor, ShapesAndMetadata) {
  Tensor t = Tensor::zeros({2, 3, 4});
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(t.str(), "float32[2, 3, 4] on cpu");
  EXPECT_EQ(Tensor::scalar(2.5).numel(), 1);
  EXPECT_DOUBLE_EQ(Tensor::scalar(2.5).item(), 2.5);
  EXPECT_THROW(t.size(3), Error);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % kCpuAlignment, 0u);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor v = t.view({3, -1});
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  EXPECT_TRUE(v.shares_storage(t));
  v.data<float>()[0] = 42.f;
  EXPECT_EQ(t.data<float>()[0], 42.f);
  Tensor c = t.clone();
  EXPECT_FALSE(c.shares_storage(t));
  EXPECT_THROW(t.view({4, 2}), Error);
  EXPECT_THROW(t.view({-1, -1}), Error);
}

TEST(Tensor, Narrow0SelectsRowsAndSharesStorage) {
  Tensor t = Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}, {4, 2});
  Tensor r = t.narrow0(1, 2);
  EXPECT_EQ(r.shape(), (Shape{2, 2}));
  EXPECT_EQ(r.to_float_vector(), (std::vector<float>{2, 3, 4, 5}));
  EXPECT_TRUE(r.shares_storage(t));
  const uint64_t v = t.version();
  r.copy_from(Tensor::zeros({2, 2}));
  EXPECT_GT(t.version(), v) << "views share one version counter";
  EXPECT_EQ(t.to_float_vector(), (std::vector<float>{0, 1, 0, 0, 0, 0, 6, 7}));
  EXPECT_THROW(t.narrow0(3, 2), Error);
}

TEST(Tensor, ConversionsAndTypedAccess) {
  Tensor t = Tensor::full({3}, 1.5, DType::Float64);
  EXPECT_EQ(t.to(DType::Float32).to_float_vector(), (std::vector<float>{1.5f, 1.5f, 1.5f}));
  EXPECT_THROW(t.data<float>(), Error);
}

TEST(Errors, CarryFileLineAndHint) {
  try {
    Tensor::zeros({2, 3}).view({5});
    FAIL() << "expected dp::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.file()).find("tensor.cpp"), std::string::npos);
    EXPECT_GT(e.line(), 0);
    EXPECT_FALSE(e.hint().empty());
    const std::string what = e.what();
    EXPECT_NE(what.find("tensor.cpp:" + std::to_string(e.line())), std::string::npos) << what;
    EXPECT_NE(what.find("hint:"), std::string::npos) << what;
  }
}

// Random123's published known-answer tests for philox4x32_10 (kat_vectors).
TEST(Philox, KnownAnswers) {
  Philox4x32 zero = philox4x32_10(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  Philox4x32 ones = philox4x32_10(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
}

TEST(Philox, StreamsAndUniformRange) {
  EXPECT_NE(philox_u32(1, 0, 0), philox_u32(1, 1, 0));
  EXPECT_NE(philox_u32(1, 0, 0), philox_u32(2, 0, 0));
  EXPECT_EQ(philox_u32(5, 6, 7), philox_block(5, 6, 1).v[3]);
  EXPECT_EQ(u32_to_uniform(0xffffffffu) < 1.0f, true);
  Rng a(3, 4), b(3, 4);
  double mean = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = a.uniform();
    ASSERT_EQ(u, b.uniform());
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    mean += u / 10000;
  }
  EXPECT_NEAR(mean, 0.5, 0.02);
}

TEST(ThreadPool, CoversTheRangeExactlyOnce) {
  for (int threads : {1, 2, 3}) {
    const int saved = num_threads();
    set_num_threads(threads);
    for (int64_t n : {0, 1, 7, 1000, 100003}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      parallel_for(0, n, 3, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n=" << n << " i=" << i;
    }
    set_num_threads(saved);
  }
}

TEST(ThreadPool, NestedRegionsRunAndExceptionsPropagate) {
  std::atomic<int64_t> total{0};
  parallel_for(0, 8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) parallel_for(0, 10, 1, [&](int64_t x, int64_t y) { total += y - x; });
  });
  EXPECT_EQ(total.load(), 80);
  EXPECT_THROW(parallel_for(0, 1000, 1,
                            [](int64_t b, int64_t) {
                              if (b >= 0) DP_THROW("boom", "");
                            }),
               Error);
  // The pool still works after an exception.
  std::atomic<int64_t> count{0};
  parallel_for(0, 100, 1, [&](int64_t b, int64_t e) { count += e - b; });
  EXPECT_EQ(count.load(), 100);
}

}  // namespace
}  // namespace dp

#include "engine/allocator.h"

// Large host blocks are cached on free and handed out again (no page faults per step), stay
// 64-byte aligned, and small blocks keep working as before.
TEST(CpuAllocator, ReusesFreedLargeBlocksAndAligns) {
  dp::Allocator& a = dp::cpu_allocator();
  const size_t big = (size_t{37} << 20) + 123;  // a large block of a size class no other test uses
  void* p = a.allocate(big);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % dp::kCpuAlignment, 0u);
  static_cast<char*>(p)[big - 1] = 42;  // the whole requested range is usable
  a.deallocate(p, big);
  void* q = a.allocate(big + 1000);  // same size class (at most 12.5% rounding)
  EXPECT_EQ(q, p) << "a freed large block of the same size class was not reused";
  a.deallocate(q, big + 1000);
  void* small = a.allocate(100);
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small) % dp::kCpuAlignment, 0u);
  a.deallocate(small, 100);
}
