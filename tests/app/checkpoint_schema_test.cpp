// The one checkpoint schema: a round trip, and every kind of damaged or mismatched dataset is
// refused with an error naming the file and the dataset (issue 13: dp-export wrote
// classifier.weight [10, 15], dp-inspect read past a short noise/label, --resume took a
// transposed momentum buffer).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>

#include "engine/error.h"
#include "tests/app/checkpoint_fixture.h"

using namespace dp;

namespace {

// Name of the first parameter of the given rank in the fixture's net.
std::string parameter_of_rank(int64_t rank) {
  app::Checkpoint c = fixture::small_checkpoint();
  for (const auto& [name, t] : c.momentum)
    if (t.dim() == rank) return name;
  return "";
}

Tensor* tensor_named(io::TensorFile& f, const std::string& name) {
  for (auto& [n, t] : f.tensors)
    if (n == name) return &t;
  return nullptr;
}

void replace(io::TensorFile& f, const std::string& name, const Tensor& t) {
  Tensor* slot = tensor_named(f, name);
  ASSERT_NE(slot, nullptr) << name;
  *slot = t;
}

void erase(io::TensorFile& f, const std::string& name) {
  std::erase_if(f.tensors, [&](const auto& e) { return e.first == name; });
}

// Writes the fixture after `tamper`, reads it through the schema and expects an error whose text
// names the file and contains every one of `expected`.
void expect_refused(const std::function<void(io::TensorFile&)>& tamper, std::vector<std::string> expected) {
  std::string dir = fixture::temp_dir("dp-schema");
  std::string path = dir + "/checkpoint.h5";
  io::TensorFile f = app::encode_checkpoint(fixture::small_checkpoint());
  tamper(f);
  io::write_tensor_file_atomic(path, f);
  try {
    app::read_checkpoint(path);
    ADD_FAILURE() << "accepted a checkpoint that should be refused (" << expected.front() << ")";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    for (const auto& s : expected) EXPECT_NE(what.find(s), std::string::npos) << "'" << s << "' not in: " << what;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace

TEST(CheckpointSchema, RoundTrip) {
  std::string dir = fixture::temp_dir("dp-schema");
  std::string path = dir + "/checkpoint.h5";
  app::Checkpoint c = fixture::small_checkpoint();
  app::write_checkpoint(path, c);
  app::Checkpoint r = app::read_checkpoint(path);
  EXPECT_EQ(r.path, path);
  EXPECT_EQ(r.arch, "tiny-cnn");
  EXPECT_EQ(r.num_classes, 10);
  EXPECT_EQ(r.progress.epoch, 2);
  EXPECT_EQ(r.progress.global_step, 7);
  EXPECT_EQ(r.progress.seed, 3);
  EXPECT_DOUBLE_EQ(r.progress.best_val_top1, 41.5);
  EXPECT_EQ(r.config, c.config);
  ASSERT_EQ(r.model.size(), c.model.size());
  for (const auto& [name, t] : c.model) {
    const Tensor& u = r.model.at(name);
    ASSERT_EQ(u.shape(), t.shape()) << name;
    EXPECT_EQ(std::memcmp(u.raw_data(), t.raw_data(), t.nbytes()), 0) << name;
  }
  EXPECT_EQ(r.momentum.size(), c.momentum.size());
  ASSERT_TRUE(r.noise.has_value());
  EXPECT_EQ(r.noise->label, c.noise->label);
  EXPECT_EQ(r.noise->is_corrupted, c.noise->is_corrupted);
  EXPECT_EQ(r.noise->protocol, "symmetric");
  EXPECT_EQ(r.theta_inst.theta.to_float_vector(), c.theta_inst.theta.to_float_vector());
  EXPECT_EQ(r.theta_inst.steps, 6);
  EXPECT_EQ(r.theta_class.steps, 5);
  EXPECT_EQ(r.history.inst.counts, c.history.inst.counts);
  EXPECT_EQ(r.history.cls.edges, c.history.cls.edges);
  EXPECT_EQ(r.sample_loss.sum.to_float_vector(), c.sample_loss.sum.to_float_vector());
  EXPECT_EQ(r.sample_loss.count.to_float_vector(), c.sample_loss.count.to_float_vector());
  layers::ModulePtr model = app::make_checkpoint_model(r);
  EXPECT_EQ(model->state_dict().size(), c.model.size());
  std::filesystem::remove_all(dir);
}

// A checkpoint without the optional parts (no θ, no momentum yet, no history) still loads.
TEST(CheckpointSchema, OptionalPartsMayBeAbsent) {
  std::string dir = fixture::temp_dir("dp-schema");
  app::Checkpoint c = fixture::small_checkpoint();
  c.momentum.clear();
  c.theta_class = {};
  c.theta_inst = {};
  c.history = train::SigmaRecord();
  c.sample_loss = {};  // checkpoints written before the record
  app::write_checkpoint(dir + "/c.h5", c);
  app::Checkpoint r = app::read_checkpoint(dir + "/c.h5");
  EXPECT_FALSE(r.theta_inst.defined());
  EXPECT_FALSE(r.sample_loss.sum.defined());
  EXPECT_TRUE(r.momentum.empty());
  std::filesystem::remove_all(dir);
}

TEST(CheckpointSchema, RefusesAModelTensorOfTheWrongShape) {
  std::string fc = parameter_of_rank(2);
  ASSERT_FALSE(fc.empty());
  expect_refused([&](io::TensorFile& f) { replace(f, "model/" + fc, Tensor::zeros({10, 15})); },
                 {"/model/" + fc, "[10, 15]", "tiny-cnn with 10 classes"});
  std::string conv = parameter_of_rank(4);
  ASSERT_FALSE(conv.empty());
  expect_refused([&](io::TensorFile& f) { replace(f, "model/" + conv, Tensor::zeros({4, 3, 9})); },
                 {"/model/" + conv, "[4, 3, 9]"});
  expect_refused([&](io::TensorFile& f) { replace(f, "model/" + fc, Tensor::zeros(tensor_named(f, "model/" + fc)->shape(), DType::Float64)); },
                 {"/model/" + fc, "float64"});
}

TEST(CheckpointSchema, RefusesMissingAndUnexpectedTensors) {
  std::string fc = parameter_of_rank(2);
  expect_refused([&](io::TensorFile& f) { erase(f, "model/" + fc); }, {"/model/" + fc, "missing"});
  expect_refused([&](io::TensorFile& f) { f.tensors.emplace_back("model/extra.weight", Tensor::zeros({2})); },
                 {"/model/extra.weight"});
  expect_refused([&](io::TensorFile& f) { f.tensors.emplace_back("noise/mystery", Tensor::zeros({6})); },
                 {"/noise/mystery"});
  expect_refused([&](io::TensorFile& f) { f.tensors.emplace_back("optimizer/momentum/nothing", Tensor::zeros({6})); },
                 {"/optimizer/momentum/nothing"});
}

TEST(CheckpointSchema, RefusesATransposedMomentumBuffer) {
  std::string fc = parameter_of_rank(2);
  expect_refused(
      [&](io::TensorFile& f) {
        Shape s = tensor_named(f, "optimizer/momentum/" + fc)->shape();
        replace(f, "optimizer/momentum/" + fc, Tensor::zeros({s[1], s[0]}));
      },
      {"/optimizer/momentum/" + fc, "parameter " + fc});
}

TEST(CheckpointSchema, RefusesNoiseAndThetaOfTheWrongLength) {
  expect_refused([](io::TensorFile& f) { replace(f, "noise/label", Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 4}, {5})); },
                 {"/noise/"});
  expect_refused([](io::TensorFile& f) { replace(f, "noise/is_corrupted", Tensor::zeros({4}, DType::UInt8)); },
                 {"/noise/is_corrupted", "[4]", "6 samples"});
  expect_refused([](io::TensorFile& f) { replace(f, "data_parameters/theta_inst", Tensor::zeros({5})); },
                 {"/data_parameters/theta_inst", "[5]", "6 samples"});
  expect_refused([](io::TensorFile& f) { replace(f, "data_parameters/theta_class_momentum", Tensor::zeros({9})); },
                 {"/data_parameters/theta_class_momentum", "num_classes = 10"});
  expect_refused([](io::TensorFile& f) { erase(f, "noise/original_label"); }, {"/noise/original_label"});
  expect_refused([](io::TensorFile& f) { erase(f, "data_parameters/theta_inst_momentum"); },
                 {"/data_parameters/theta_inst_momentum"});
}

TEST(CheckpointSchema, RefusesOutOfRangeNoiseValues) {
  expect_refused([](io::TensorFile& f) { replace(f, "noise/label", Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 10, 5}, {6})); },
                 {"/noise/label[4] = 10"});
  expect_refused([](io::TensorFile& f) { replace(f, "noise/image_source", Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, -3}, {6})); },
                 {"/noise/image_source[5] = -3"});
  expect_refused([](io::TensorFile& f) { replace(f, "noise/is_corrupted", Tensor::from_vector(std::vector<uint8_t>{0, 0, 7, 0, 0, 0}, {6})); },
                 {"/noise/is_corrupted[2] = 7"});
}

TEST(CheckpointSchema, RefusesABrokenHistory) {
  expect_refused([](io::TensorFile& f) { replace(f, "history/sigma_inst_counts", Tensor::zeros({2, 3}, DType::Int64)); },
                 {"/history/sigma_inst_counts", "[2, 3]"});
  expect_refused([](io::TensorFile& f) { replace(f, "history/sigma_edges", Tensor::from_vector(std::vector<double>{1, 0.5, 2}, {3})); },
                 {"/history/sigma_edges", "increasing"});
  expect_refused([](io::TensorFile& f) { erase(f, "history/sigma_edges"); }, {"/history/sigma_edges"});
}

TEST(CheckpointSchema, RefusesABrokenLossRecord) {
  expect_refused([](io::TensorFile& f) { replace(f, "history/sample_loss_sum", Tensor::zeros({5})); },
                 {"/history/sample_loss_sum", "[5]", "6 samples"});
  expect_refused([](io::TensorFile& f) { replace(f, "history/sample_loss_count", Tensor::zeros({6}, DType::Int64)); },
                 {"/history/sample_loss_count", "int64"});
  expect_refused([](io::TensorFile& f) { erase(f, "history/sample_loss_count"); },
                 {"/history/sample_loss_sum", "without", "/history/sample_loss_count"});
}

// The σ histories of the noise map's groups (with exact sums) come back as written, and are
// refused unless all three cover every epoch; sums must have one entry per epoch.
TEST(CheckpointSchema, SigmaGroupsRoundTripAndAreCheckedTogether) {
  app::Checkpoint c = fixture::small_checkpoint();
  c.history.inst.sums = {3.5, 4.25};
  c.history.inst_mislabelled.counts = {{0, 1}, {0, 1}};
  c.history.inst_permuted_kept.counts = {{0, 0}, {0, 0}};
  c.history.inst_untouched.counts = {{2, 3}, {1, 4}};
  const std::string dir = fixture::temp_dir("dp-schema");
  app::write_checkpoint(dir + "/groups.h5", c);
  app::Checkpoint r = app::read_checkpoint(dir + "/groups.h5");
  EXPECT_TRUE(r.history.has_groups());
  EXPECT_EQ(r.history.inst.sums, c.history.inst.sums);
  EXPECT_EQ(r.history.inst_untouched.counts, c.history.inst_untouched.counts);
  auto refused = [&](const std::function<void(io::TensorFile&)>& tamper, const std::string& expected) {
    io::TensorFile f = app::encode_checkpoint(c);
    tamper(f);
    io::write_tensor_file_atomic(dir + "/bad.h5", f);
    try {
      app::read_checkpoint(dir + "/bad.h5");
      ADD_FAILURE() << "accepted: " << expected;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  refused([](io::TensorFile& f) { erase(f, "history/sigma_inst_untouched_counts"); }, "sample groups");
  refused([](io::TensorFile& f) { replace(f, "history/sigma_inst_sums", Tensor::zeros({3}, DType::Float64)); },
          "/history/sigma_inst_sums");
  std::filesystem::remove_all(dir);
}

TEST(CheckpointSchema, RefusesBadAttributes) {
  expect_refused([](io::TensorFile& f) { f.ints["format_version"] = 2; }, {"format_version 2"});
  expect_refused([](io::TensorFile& f) { f.ints.erase("format_version"); }, {"format_version"});
  expect_refused([](io::TensorFile& f) { f.strings.erase("arch"); }, {"'arch'"});
  expect_refused([](io::TensorFile& f) { f.strings["arch"] = "resnet-nope"; }, {"resnet-nope"});
  expect_refused([](io::TensorFile& f) { f.ints["num_classes"] = int64_t{1} << 40; }, {"num_classes"});
  expect_refused([](io::TensorFile& f) { f.ints["num_classes"] = 9; }, {"tiny-cnn with 9 classes"});
  expect_refused([](io::TensorFile& f) { f.ints.erase("inst_param_steps"); }, {"inst_param_steps"});
  expect_refused([](io::TensorFile& f) { f.ints["epoch"] = -1; }, {"epoch"});
}
