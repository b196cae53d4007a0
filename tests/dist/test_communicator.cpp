// Collectives against a local reference: each rank's input is a known function of its rank, so
// every rank can compute what the collective must return. Run on 2 ranks (tests/dist/meson.build
// starts it under mpirun); started alone, the multi-rank cases skip and the one-process
// communicator is tested.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "dist/communicator.h"
#include "dist/process_group.h"

namespace dp::dist {
namespace {

template <class T>
std::vector<T> input_of(int rank, int64_t n) {
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<T>((rank + 1) * 1000 + i) / static_cast<T>(7);
  return v;
}

class Collectives : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!process_group().distributed())
      GTEST_SKIP() << "needs several ranks: run under mpirun -np 2 (meson test dist_collectives_2ranks)";
    comm = make_communicator(Device::cpu(), 60.0);
  }
  int rank() const { return comm->rank(); }
  int world() const { return comm->world_size(); }
  std::unique_ptr<Communicator> comm;
};

template <class T>
void check_all_reduce(Communicator& comm, int64_t n, ReduceOp op) {
  Tensor t = Tensor::from_vector(input_of<T>(comm.rank(), n), {n});
  comm.all_reduce(t, op);
  std::vector<T> want(static_cast<size_t>(n), T(0));
  for (int r = 0; r < comm.world_size(); ++r) {
    auto in = input_of<T>(r, n);
    for (int64_t i = 0; i < n; ++i) want[i] += in[i];  // rank order, as MPI sums two ranks
  }
  const T* got = t.data<T>();
  for (int64_t i = 0; i < n; ++i) {
    T w = op == ReduceOp::Avg ? static_cast<T>(static_cast<double>(want[i]) / comm.world_size()) : want[i];
    ASSERT_EQ(got[i], w) << "element " << i << " of " << n;
  }
}

TEST_F(Collectives, AllReduceSumFloat32OddSizes) {
  for (int64_t n : {1, 3, 1001, 65537}) check_all_reduce<float>(*comm, n, ReduceOp::Sum);
}

TEST_F(Collectives, AllReduceSumAndAvgFloat64) {
  check_all_reduce<double>(*comm, 999, ReduceOp::Sum);
  check_all_reduce<double>(*comm, 17, ReduceOp::Avg);
  check_all_reduce<float>(*comm, 17, ReduceOp::Avg);
}

TEST_F(Collectives, AllReduceSumBFloat16PairwiseInFloat32) {
  // bf16 travels as 16-bit words with our own MPI sum (run.allreduce_dtype = "bfloat16"): each
  // pairwise sum in float32, rounded back to bf16. Values whose float32 sum is not a bf16 value,
  // so a sum of the raw words or a missing rounding would show.
  const int64_t n = 1001;
  auto values = [n](int r) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(bfloat16(1.0f + 0.37f * static_cast<float>(i % 13) +
                                                                       0.011f * static_cast<float>(r + 1)));
    return v;
  };
  Tensor t = Tensor::from_vector(values(rank()), {n}).to(DType::BFloat16);
  comm->all_reduce(t, ReduceOp::Sum);
  std::vector<float> want = values(0);
  for (int r = 1; r < world(); ++r) {
    const std::vector<float> in = values(r);
    for (int64_t i = 0; i < n; ++i) want[i] = static_cast<float>(bfloat16(want[i] + in[i]));
  }
  const std::vector<float> got = t.to_float_vector();
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << "element " << i;
}

TEST_F(Collectives, AllReduceInt64) {
  Tensor t = Tensor::from_vector(std::vector<int64_t>{int64_t{1} << 40, rank(), -7}, {3});
  comm->all_reduce(t);
  const int64_t* p = t.data<int64_t>();
  EXPECT_EQ(p[0], (int64_t{1} << 40) * world());
  EXPECT_EQ(p[1], world() * (world() - 1) / 2);
  EXPECT_EQ(p[2], -7 * world());
}

TEST_F(Collectives, SumInRankOrderIsTheRankOrderSumOnEveryRank) {
  // From 4 ranks on, these values' sum depends on the order of addition (the tiny ones survive only
  // when added to each other first), and rank order gives exactly `want`; on 2 ranks it checks
  // the sum and that every rank has the same one.
  auto value = [](int r) { return r % 2 ? 1e-16 * (r + 1) : 1.0 + r; };
  double want = 0.0;
  for (int r = 0; r < world(); ++r) want += value(r);
  const double got = sum_in_rank_order(*comm, value(rank()));
  EXPECT_EQ(got, want);
  Tensor all = comm->all_gather(Tensor::from_vector(std::vector<double>{got}, {1}),
                                std::vector<int64_t>(static_cast<size_t>(world()), 1));
  for (int r = 0; r < world(); ++r) EXPECT_EQ(all.data<double>()[r], got) << "rank " << r;
}

TEST_F(Collectives, AllReduceEmptyIsANoOp) {
  Tensor t = Tensor::empty({0}, DType::Float32);
  comm->all_reduce(t);
  EXPECT_EQ(t.numel(), 0);
}

TEST_F(Collectives, AllGatherVariableInt64RowsInRankOrder) {
  // Rank r has r + 2 rows of [rows, 3] int64 (odd total); then with counts exchanged.
  const int64_t mine = rank() + 2;
  std::vector<int64_t> v;
  for (int64_t i = 0; i < mine * 3; ++i) v.push_back(rank() * 100 + i);
  Tensor local = Tensor::from_vector(v, {mine, 3});
  std::vector<int64_t> counts;
  for (int r = 0; r < world(); ++r) counts.push_back(r + 2);
  for (bool given : {true, false}) {
    Tensor all = comm->all_gather(local, given ? counts : std::vector<int64_t>{});
    std::vector<int64_t> want;
    for (int r = 0; r < world(); ++r)
      for (int64_t i = 0; i < (r + 2) * 3; ++i) want.push_back(r * 100 + i);
    ASSERT_EQ(all.shape(), (Shape{static_cast<int64_t>(want.size()) / 3, 3}));
    EXPECT_EQ(std::vector<int64_t>(all.data<int64_t>(), all.data<int64_t>() + all.numel()), want);
  }
}

TEST_F(Collectives, AllGatherWithAnEmptyRank) {
  // Rank 0 contributes nothing, the others 3 float32 values each.
  const int64_t mine = rank() == 0 ? 0 : 3;
  Tensor local = Tensor::from_vector(input_of<float>(rank(), mine), {mine});
  Tensor all = comm->all_gather(local);
  std::vector<float> want;
  for (int r = 1; r < world(); ++r)
    for (float x : input_of<float>(r, 3)) want.push_back(x);
  EXPECT_EQ(all.to_float_vector(), want);
  Tensor none = comm->all_gather(Tensor::empty({0}, DType::Int64));
  EXPECT_EQ(none.numel(), 0);
}

TEST_F(Collectives, BroadcastFromTheLastRank) {
  const int root = world() - 1;
  Tensor t = Tensor::from_vector(input_of<double>(rank(), 5), {5});
  comm->broadcast(t, root);
  EXPECT_EQ(t.to_double_vector(), input_of<double>(root, 5));
  comm->barrier();
}

TEST_F(Collectives, MpiRefusesFloat16Reductions) {
  Tensor half = Tensor::empty({4}, DType::Float16);  // no kernel fills float16; MPI must refuse it first
  EXPECT_THROW(comm->all_reduce(half), Error);
}

TEST(ProcessGroup, PlainStartIsOneProcessWithATrivialCommunicator) {
  if (process_group().distributed()) GTEST_SKIP() << "started by a launcher: the one-process case runs without mpirun";
  EXPECT_EQ(process_group().world_size, 1);
  EXPECT_EQ(process_group().rank, 0);
  auto comm = make_communicator(Device::cpu());
  Tensor t = Tensor::from_vector(std::vector<float>{1.5f, 2.5f}, {2});
  comm->all_reduce(t, ReduceOp::Avg);
  EXPECT_EQ(t.to_float_vector(), (std::vector<float>{1.5f, 2.5f}));
  EXPECT_EQ(comm->all_gather(t).to_float_vector(), t.to_float_vector());
  EXPECT_EQ(exchange_counts(*comm, 7), std::vector<int64_t>{7});
}

}  // namespace
}  // namespace dp::dist
