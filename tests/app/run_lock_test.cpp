// One writer per run folder (app/run_lock.h): a second holder is refused naming the first (process
// id and host); a released or stale lock is taken over; --overwrite never moves a locked folder aside.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "app/run_folder.h"
#include "app/run_lock.h"
#include "engine/error.h"
#include "tests/app/checkpoint_fixture.h"

using namespace dp;
namespace fs = std::filesystem;

namespace {

std::string this_host() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
}

// The refusal of a second lock on `folder` while another is held.
std::string refusal(const std::string& folder) {
  try {
    app::RunLock second(folder);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(RunLock, SecondHolderIsRefusedNamingTheFirst) {
  const std::string dir = fixture::temp_dir("dp-lock") + "/run";
  app::RunLock first(dir);  // creates the folder
  ASSERT_TRUE(first.held());
  const std::string message = refusal(dir);
  ASSERT_FALSE(message.empty()) << "a second lock on one folder was granted";
  EXPECT_NE(message.find("is in use by another dp-train"), std::string::npos) << message;
  EXPECT_NE(message.find(dir), std::string::npos) << message;
  EXPECT_NE(message.find("pid " + std::to_string(getpid()) + " on host " + this_host()), std::string::npos) << message;
  fs::remove_all(fs::path(dir).parent_path());
}

TEST(RunLock, ReleasedAndStaleLocksAreTakenOver) {
  const std::string dir = fixture::temp_dir("dp-lock");
  { app::RunLock first(dir); }
  EXPECT_EQ(refusal(dir), "") << "a released lock was not taken over";
  // A record left by a killed run (its lock went with it): taken over and rewritten.
  std::ofstream(dir + "/" + app::kRunLockFile) << "pid 999999999 on host elsewhere, started long ago\n";
  app::RunLock next(dir);
  EXPECT_NE(app::describe_lock_holder(dir).find("pid " + std::to_string(getpid())), std::string::npos)
      << app::describe_lock_holder(dir);
  fs::remove_all(dir);
}

TEST(RunLock, OverwriteLeavesALockedFolderWhereItIs) {
  const std::string dir = fixture::temp_dir("dp-lock") + "/run";
  app::RunLock running(dir);
  std::ofstream(dir + "/checkpoint.h5") << "a run in progress";
  std::unique_ptr<app::RunLock> lock;
  EXPECT_THROW(app::prepare_run_folder(dir, app::FolderUse::kOverwrite, &lock), Error);
  EXPECT_TRUE(fs::exists(dir + "/checkpoint.h5"));
  int replaced = 0;
  for (const auto& e : fs::directory_iterator(fs::path(dir).parent_path())) replaced += e.path() != dir;
  EXPECT_EQ(replaced, 0) << "the locked folder was moved aside";
  fs::remove_all(fs::path(dir).parent_path());
}

TEST(RunLock, OverwriteLocksTheNewFolder) {
  const std::string dir = fixture::temp_dir("dp-lock") + "/run";
  fs::create_directories(dir);
  std::ofstream(dir + "/checkpoint.h5") << "a finished run";
  std::unique_ptr<app::RunLock> lock;
  const std::string moved = app::prepare_run_folder(dir, app::FolderUse::kOverwrite, &lock);
  EXPECT_TRUE(fs::exists(moved + "/checkpoint.h5"));
  ASSERT_TRUE(lock && lock->held());
  EXPECT_EQ(lock->folder(), dir);
  EXPECT_FALSE(refusal(dir).empty()) << "the new folder is not locked";
  EXPECT_EQ(refusal(moved), "") << "the old run's folder is still locked";
  fs::remove_all(fs::path(dir).parent_path());
}
