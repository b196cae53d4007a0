// Durable file replacement (io/atomic_file.h): every failing step (write, fsync, close, rename,
// the folder's fsync) is reported, naming the file, with no temporary left and the previous file
// unchanged; a full disk names the folder and the space needed. Faults come from io/io_fault.h.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "io/atomic_file.h"
#include "io/checkpoint_file.h"
#include "io/io_fault.h"

using namespace dp;
namespace fs = std::filesystem;

namespace {

class AtomicFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "dp-atomic-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    target_ = dir_ + "/state.bin";
    io::write_file_atomic(target_, "previous");
  }
  void TearDown() override {
    io::set_io_fault("");
    fs::remove_all(dir_);
  }
  std::string read(const std::string& path) const {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  int files() const {
    int n = 0;
    for (const auto& entry : fs::directory_iterator(dir_)) n += entry.is_regular_file();
    return n;
  }
  // The replacement under `fault` fails with a message containing `text`; nothing else changes.
  void expect_refused(const std::string& fault, const std::string& text) {
    io::set_io_fault(fault);
    try {
      io::write_file_atomic(target_, "new content");
      ADD_FAILURE() << fault << ": the write succeeded";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(target_), std::string::npos) << e.what();
      EXPECT_NE(e.message().find(text), std::string::npos) << e.what();
    }
    io::set_io_fault("");
    EXPECT_EQ(read(target_), "previous") << fault;
    EXPECT_EQ(files(), 1) << fault << ": a temporary was left behind";
  }
  std::string dir_, target_;
};

}  // namespace

TEST_F(AtomicFile, ReplacesTheFile) {
  io::write_file_atomic(target_, "new content");
  EXPECT_EQ(read(target_), "new content");
  EXPECT_EQ(files(), 1);
}

TEST_F(AtomicFile, EveryFailingStepKeepsThePreviousFile) {
  expect_refused("fsync", "fsync failed");
  expect_refused("close", "close failed");
  expect_refused("rename", "renaming its temporary over it failed");
  expect_refused("fsync:state.bin", "fsync failed");
}

TEST_F(AtomicFile, FullDiskNamesTheFolderAndTheSpaceNeeded) {
  expect_refused("write", "the disk holding " + dir_ + " is full (the file needs about 11 bytes");
}

TEST_F(AtomicFile, AFaultForAnotherFileLeavesThisOneAlone) {
  io::set_io_fault("fsync:checkpoint.h5");
  io::write_file_atomic(target_, "new content");
  EXPECT_EQ(read(target_), "new content");
}

TEST_F(AtomicFile, FailedFolderSyncIsReportedWithTheNewFileInPlace) {
  io::set_io_fault("dirsync");
  try {
    io::write_file_atomic(target_, "new content");
    FAIL() << "the failed folder fsync was not reported";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("the fsync of its folder failed"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read(target_), "new content");
  EXPECT_EQ(files(), 1);
}

TEST_F(AtomicFile, UncommittedStagedFileIsRemoved) {
  {
    io::StagedFile staged(target_, "abc", 3);
    EXPECT_TRUE(fs::exists(staged.temporary()));
  }
  EXPECT_EQ(files(), 1);
  EXPECT_EQ(read(target_), "previous");
}

TEST_F(AtomicFile, BadFaultSpecIsRefused) { EXPECT_THROW(io::set_io_fault("fsink"), Error); }

// The HDF5 writer goes through the same path: a failed fsync keeps the previous tensor file.
TEST_F(AtomicFile, TensorFileFsyncFailureKeepsThePreviousFile) {
  const std::string path = dir_ + "/ckpt.h5";
  io::TensorFile first;
  first.tensors.emplace_back("w", Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}));
  io::write_tensor_file_atomic(path, first);
  io::TensorFile second;
  second.tensors.emplace_back("w", Tensor::from_vector(std::vector<float>{4, 5, 6}, {3}));
  io::set_io_fault("fsync:ckpt.h5");
  EXPECT_THROW(io::write_tensor_file_atomic(path, second), Error);
  io::set_io_fault("");
  EXPECT_EQ(io::read_tensor_file(path).at("w").to_float_vector(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(files(), 2);  // state.bin and ckpt.h5
}

TEST_F(AtomicFile, StaleTemporariesOfDeadWritersAreRemoved) {
  std::ofstream(dir_ + "/config.toml.tmp.999999999") << "x";  // no such process
  std::ofstream(dir_ + "/checkpoint.h5.tmp." + std::to_string(getpid())) << "x";  // alive: ours
  EXPECT_EQ(io::remove_stale_temporaries(dir_), 1);
  EXPECT_FALSE(fs::exists(dir_ + "/config.toml.tmp.999999999"));
  EXPECT_TRUE(fs::exists(dir_ + "/checkpoint.h5.tmp." + std::to_string(getpid())));
}
