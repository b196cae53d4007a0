// HDF5 tensor files: round trip, checked loading, and atomic replacement under SIGKILL.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "engine/error.h"
#include "io/checkpoint_file.h"

using namespace dp;

namespace {

std::string temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "dp-io-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

io::TensorFile sample(float fill, int64_t big = 4) {
  io::TensorFile f;
  std::vector<float> w(static_cast<size_t>(big * 3));
  for (size_t i = 0; i < w.size(); ++i) w[i] = fill + static_cast<float>(i);
  f.tensors.emplace_back("model/layer1.0.conv1.weight", Tensor::from_vector(w, {big, 3}));
  f.tensors.emplace_back("data_parameters/theta_inst", Tensor::from_vector(std::vector<double>{1, 2}, {2}));
  f.tensors.emplace_back("noise/original_label", Tensor::from_vector(std::vector<int64_t>{7, -1, 3}, {3}));
  f.tensors.emplace_back("step", Tensor::from_vector(std::vector<int64_t>{42}, {}));
  f.ints["format_version"] = 1;
  f.floats["lr"] = 0.1;
  f.strings["config"] = "[optim]\nlr = 0.1\n";
  return f;
}

}  // namespace

TEST(TensorFile, RoundTrip) {
  std::string dir = temp_dir();
  std::string path = dir + "/ckpt.h5";
  io::write_tensor_file_atomic(path, sample(0.5f));
  io::TensorFile r = io::read_tensor_file(path);
  ASSERT_EQ(r.tensors.size(), 4u);
  EXPECT_EQ(r.at("model/layer1.0.conv1.weight").shape(), (Shape{4, 3}));
  EXPECT_EQ(r.at("model/layer1.0.conv1.weight").to_float_vector()[5], 5.5f);
  EXPECT_EQ(r.at("data_parameters/theta_inst").dtype(), DType::Float64);
  EXPECT_EQ(r.at("noise/original_label").to_double_vector()[1], -1.0);
  EXPECT_EQ(r.at("step").dim(), 0);
  EXPECT_EQ(r.ints.at("format_version"), 1);
  EXPECT_DOUBLE_EQ(r.floats.at("lr"), 0.1);
  EXPECT_EQ(r.strings.at("config"), "[optim]\nlr = 0.1\n");
  std::filesystem::remove_all(dir);
}

TEST(TensorFile, CheckedLoadNamesTheMismatch) {
  std::string dir = temp_dir();
  std::string path = dir + "/ckpt.h5";
  io::write_tensor_file_atomic(path, sample(0));
  io::TensorFile r = io::read_tensor_file(path);
  Tensor ok = Tensor::zeros({4, 3});
  io::load_checked(r, "model/layer1.0.conv1.weight", ok, path);
  EXPECT_EQ(ok.to_float_vector()[11], 11.0f);
  Tensor wrong = Tensor::zeros({3, 3});
  try {
    io::load_checked(r, "model/layer1.0.conv1.weight", wrong, path);
    FAIL() << "shape mismatch not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("source shape [4, 3] vs target shape [3, 3]"), std::string::npos)
        << e.what();
  }
  Tensor missing = Tensor::zeros({1});
  EXPECT_THROW(io::load_checked(r, "model/fc.weight", missing, path), Error);
  std::filesystem::remove_all(dir);
}

TEST(TensorFile, TruncatedFileGivesAClearError) {
  std::string dir = temp_dir();
  std::string path = dir + "/ckpt.h5";
  io::write_tensor_file_atomic(path, sample(0, 1000));
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  try {
    io::read_tensor_file(path);
    FAIL() << "truncated file accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW(io::read_tensor_file(dir + "/absent.h5"), Error);
  std::filesystem::remove_all(dir);
}

// A child process rewrites a large checkpoint in a loop and is killed with SIGKILL at a
// random moment; the previous checkpoint must stay loadable every time.
TEST(TensorFile, KilledWriterLeavesPreviousFileLoadable) {
  std::string dir = temp_dir();
  std::string path = dir + "/ckpt.h5";
  const int64_t rows = 400000;  // ~4.8 MB per write
  io::write_tensor_file_atomic(path, sample(1.0f, rows));
  for (int trial = 0; trial < 4; ++trial) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int i = 0;; ++i) io::write_tensor_file_atomic(path, sample(static_cast<float>(i), rows));
    }
    usleep(30000 + trial * 25000);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    io::TensorFile r = io::read_tensor_file(path);
    const Tensor& w = r.at("model/layer1.0.conv1.weight");
    ASSERT_EQ(w.shape(), (Shape{rows, 3}));
    std::vector<float> v = w.to_float_vector();
    EXPECT_EQ(v[3] - v[0], 3.0f);  // a complete, consistent tensor
  }
  std::filesystem::remove_all(dir);
}
