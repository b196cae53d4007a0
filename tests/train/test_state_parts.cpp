// The owners in train/ save and load their checkpoint parts themselves (engine/state_io.h): SGD
// momentum, θ with its SparseSGD state, the σ history. Each round trip goes through an in-memory
// store; the names are the checkpoint layout's (docs/checkpoint.md).
#include <gtest/gtest.h>

#include <cstring>

#include "engine/error.h"
#include "layers/module.h"
#include "tests/common/memory_state.h"
#include "train/data_parameters.h"
#include "train/sgd.h"
#include "train/sigma_histogram.h"

using namespace dp;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

}  // namespace

TEST(StateParts, SgdMomentumByParameterName) {
  std::vector<Tensor> params = {Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2}),
                                Tensor::from_vector(std::vector<float>{5, 6}, {2})};
  for (Tensor& p : params) p.set_requires_grad(true);
  train::SGD sgd(params, {0.1, 0.9, 0.0, false});
  const std::vector<std::string> names = {"fc.weight", "fc.bias"};
  EXPECT_TRUE(sgd.named_momentum(names).empty()) << "no buffer before the first step";
  params[0].set_grad(Tensor::from_vector(std::vector<float>{1, -1, 2, -2}, {2, 2}));
  params[1].set_grad(Tensor::from_vector(std::vector<float>{3, -3}, {2}));
  sgd.step();
  fixture::MemoryState m;
  train::save_momentum_state(m, sgd.named_momentum(names));
  ASSERT_EQ(m.tensors.count("optimizer/momentum/fc.weight"), 1u);
  train::NamedTensors read = train::read_momentum_state(m, {{"fc.weight", params[0]}, {"fc.bias", params[1]}}, "a net");
  ASSERT_EQ(read.size(), 2u);
  std::vector<Tensor> copies = {params[0].clone(), params[1].clone()};
  for (Tensor& p : copies) p.set_requires_grad(true);
  train::SGD other(copies, {0.1, 0.9, 0.0, false});
  other.load_named_momentum(read, names);
  for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(same_bits(other.momentum_buffers()[i], sgd.momentum_buffers()[i])) << i;
  // A buffer shaped unlike its parameter is refused, naming the dataset and the parameter.
  m.tensors["optimizer/momentum/fc.weight"] = Tensor::zeros({4});
  try {
    train::read_momentum_state(m, {{"fc.weight", params[0]}}, "a net");
    FAIL() << "a [4] buffer for a [2, 2] parameter was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/optimizer/momentum/fc.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("parameter fc.weight"), std::string::npos) << e.what();
  }
}

TEST(StateParts, DataParametersRoundTripWithTheirOptimiserState) {
  train::DataParamConfig config;
  config.learn_class_parameters = config.learn_inst_parameters = true;
  train::DataParameters a(config, 3, 5), b(config, 3, 5);
  Tensor logits = Tensor::from_vector(std::vector<float>{1, 2, 0.5f, -1, 0, 3}, {2, 3});
  a.loss(logits, Tensor::from_vector(std::vector<int64_t>{0, 2}, {2}), Tensor::from_vector(std::vector<int64_t>{1, 4}, {2}));
  a.step();
  fixture::MemoryState m;
  for (auto kind : {train::ThetaKind::kClass, train::ThetaKind::kInstance}) a.state(kind).save(m, kind);
  EXPECT_EQ(m.ints.at("class_param_steps"), 1);
  EXPECT_EQ(m.ints.at("inst_param_steps"), 1);
  const train::ThetaState cls = train::ThetaState::read(m, train::ThetaKind::kClass, 3, "3 classes");
  const train::ThetaState inst = train::ThetaState::read(m, train::ThetaKind::kInstance, 5, "5 samples");
  EXPECT_TRUE(m.untaken().empty());
  b.load_state(cls, inst, "memory");
  for (auto kind : {train::ThetaKind::kClass, train::ThetaKind::kInstance}) {
    EXPECT_TRUE(same_bits(a.state(kind).theta, b.state(kind).theta));
    EXPECT_TRUE(same_bits(a.state(kind).momentum, b.state(kind).momentum));
    EXPECT_EQ(a.state(kind).steps, b.state(kind).steps);
  }
  // θ of another length, and a missing θ this run learns, are refused.
  EXPECT_THROW(train::ThetaState::read(m, train::ThetaKind::kInstance, 6, "6 samples"), Error);
  EXPECT_THROW(b.load_state(cls, train::ThetaState{}, "memory"), Error);
  fixture::MemoryState nothing;
  EXPECT_FALSE(train::ThetaState::read(nothing, train::ThetaKind::kClass, 3, "").defined())
      << "absent: not learnt";
}

TEST(StateParts, SigmaRecordRoundTrip) {
  train::SigmaRecord r({0.1, 1.0, 10.0});
  r.inst.counts = {{2, 4}, {1, 5}};
  r.inst.sums = {3.5, 4.25};
  r.inst_mislabelled.counts = {{0, 1}, {0, 1}};
  r.inst_permuted_kept.counts = {{0, 0}, {0, 0}};
  r.inst_untouched.counts = {{2, 3}, {1, 4}};
  r.cls.counts = {{3, 0}, {2, 1}};
  fixture::MemoryState m;
  r.save(m);
  train::SigmaRecord back;
  back.load(m);
  EXPECT_TRUE(m.untaken().empty());
  EXPECT_EQ(back.inst.edges, r.inst.edges);
  EXPECT_EQ(back.inst.counts, r.inst.counts);
  EXPECT_EQ(back.inst.sums, r.inst.sums);
  EXPECT_EQ(back.inst_untouched.counts, r.inst_untouched.counts);
  EXPECT_EQ(back.cls.counts, r.cls.counts);
  // Nothing saved: a fresh record.
  fixture::MemoryState nothing;
  train::SigmaRecord empty;
  empty.load(nothing);
  EXPECT_TRUE(empty.empty());
}

// The model's part: read_state takes exactly the module's entries, checked against it, and
// leaves the module unchanged; load_state loads them.
TEST(StateParts, ModuleReadsItsOwnEntries) {
  std::vector<float> w = {1, 2, 3, 4, 5, 6};
  struct Tiny : layers::Module {
    Tensor weight = Tensor::zeros({2, 3}), running = Tensor::zeros({3});
    Tiny() : Module("Tiny") {
      register_parameter("weight", &weight);
      register_buffer("running", &running);
    }
    Tensor forward(const Tensor& x) override { return x; }
  };
  auto a = std::make_shared<Tiny>(), b = std::make_shared<Tiny>();
  a->weight.copy_from(Tensor::from_vector(w, {2, 3}));
  fixture::MemoryState m;
  a->save_state(m, "model/");
  ASSERT_EQ(m.tensors.count("model/weight"), 1u);
  layers::StateDict read = b->read_state(m, "model/", "a tiny net");
  EXPECT_EQ(b->weight.to_float_vector(), std::vector<float>(6, 0.0f)) << "read_state changes nothing";
  b->load_state(m, "model/", "a tiny net");
  EXPECT_EQ(b->weight.to_float_vector(), w);
  m.tensors.erase("model/running");
  try {
    b->read_state(m, "model/", "a tiny net");
    FAIL() << "a missing buffer was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/model/running is missing (a tiny net has it)"), std::string::npos) << e.what();
  }
}
