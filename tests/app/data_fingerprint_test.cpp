// The data is part of the run (app/data_fingerprint.h): the fingerprint says what changed when a
// dataset changes with its counts kept (contents swapped, a class renamed, labels moved, generator
// parameters), stays the same for a moved dataset folder, and a resume on changed data is refused
// unless allowed; a checkpoint from before fingerprints still resumes, with a note.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "app/checkpoint_schema.h"
#include "app/data_fingerprint.h"
#include "app/trainer.h"
#include "engine/error.h"
#include "tests/app/checkpoint_fixture.h"

using namespace dp;
namespace fs = std::filesystem;

namespace {

// train/ and val/ with classes a and b, 3 files each, `bytes` long (never decoded here).
void write_folder(const std::string& root, size_t bytes = 100) {
  for (const char* split : {"train", "val"})
    for (const char* cls : {"a", "b"}) {
      fs::create_directories(fs::path(root) / split / cls);
      for (int i = 0; i < 3; ++i)
        std::ofstream(fs::path(root) / split / cls / (std::to_string(i) + ".jpg")) << std::string(bytes, 'x');
    }
}

app::DataFingerprint fingerprint_of(const std::string& root) {
  app::Config c = app::Config::from_string(
      "", "test.toml", {"data.dataset=imagefolder", "data.path=" + root, "model.arch=tiny-cnn", "data.image_size=8"});
  return app::fingerprint_run_data(app::make_run_data(c), c);
}

std::string differences(const app::DataFingerprint& then, const app::DataFingerprint& now) {
  std::string all;
  for (const std::string& d : app::data_differences(then, now)) all += d + "\n";
  return all;
}

app::Config synthetic_run(const std::string& output, std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = {"data.synthetic_train_size=64", "data.synthetic_test_size=32", "data.image_size=8",
                                   "model.arch=tiny-cnn",           "optim.batch_size=32",         "run.epochs=2",
                                   "run.workers=1",                 "run.output=" + output};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return app::Config::from_string("", "test.toml", sets);
}

app::TrainerOptions resume_from(const std::string& checkpoint, bool allow = false) {
  app::TrainerOptions o;
  o.quiet = true;
  o.resume = checkpoint;
  o.allow_data_change = allow;
  return o;
}

}  // namespace

TEST(DataFingerprint, AMovedDatasetKeepsItsFingerprint) {
  const std::string dir = fixture::temp_dir("dp-fingerprint");
  write_folder(dir + "/here");
  const app::DataFingerprint here = fingerprint_of(dir + "/here");
  fs::rename(dir + "/here", dir + "/there");
  EXPECT_EQ(differences(here, fingerprint_of(dir + "/there")), "");
  EXPECT_EQ(differences(here, app::DataFingerprint::from_json(here.to_json(), "test")), "");
  fs::remove_all(dir);
}

// Issue 20: the same counts, other images: accepted without a word before.
TEST(DataFingerprint, SwappedContentsWithEqualCountsAreNamed) {
  const std::string dir = fixture::temp_dir("dp-fingerprint");
  write_folder(dir);
  const app::DataFingerprint before = fingerprint_of(dir);
  std::ofstream(dir + "/train/b/1.jpg") << std::string(120, 'y');  // another image under the same name
  const std::string d = differences(before, fingerprint_of(dir));
  EXPECT_NE(d.find("the training set's 6 samples have the same names and labels but other file sizes"),
            std::string::npos)
      << d;
  EXPECT_EQ(d.find("validation"), std::string::npos) << d;
  fs::remove_all(dir);
}

TEST(DataFingerprint, ARenamedClassIsNamed) {
  const std::string dir = fixture::temp_dir("dp-fingerprint");
  write_folder(dir);
  const app::DataFingerprint before = fingerprint_of(dir);
  fs::rename(dir + "/train/b", dir + "/train/c");
  fs::rename(dir + "/val/b", dir + "/val/c");
  const std::string d = differences(before, fingerprint_of(dir));
  EXPECT_NE(d.find("the training set's class 1 is 'c', the run's was 'b'"), std::string::npos) << d;
  EXPECT_NE(d.find("other names"), std::string::npos) << d;
  fs::remove_all(dir);
}

TEST(DataFingerprint, MovedLabelsAreNamed) {
  const std::string dir = fixture::temp_dir("dp-fingerprint");
  write_folder(dir);
  const app::DataFingerprint before = fingerprint_of(dir);
  // One sample changes class, one comes back to keep the counts: the names and labels change.
  fs::rename(dir + "/train/a/0.jpg", dir + "/train/b/9.jpg");
  fs::rename(dir + "/train/b/0.jpg", dir + "/train/a/9.jpg");
  const std::string d = differences(before, fingerprint_of(dir));
  EXPECT_NE(d.find("the training set's 6 samples have other names or another order"), std::string::npos) << d;
  fs::remove_all(dir);
}

TEST(DataFingerprint, SyntheticDataIsItsParameters) {
  const std::string dir = fixture::temp_dir("dp-fingerprint");
  app::Config a = synthetic_run(dir), b = synthetic_run(dir, {"data.synthetic_noise=0.5"});
  const std::string d =
      differences(app::fingerprint_run_data(app::make_run_data(a), a), app::fingerprint_run_data(app::make_run_data(b), b));
  EXPECT_NE(d.find("other generator parameters"), std::string::npos) << d;
  fs::remove_all(dir);
}

TEST(DataFingerprint, ResumeOnOtherDataIsRefusedUnlessAllowed) {
  const std::string dir = fixture::temp_dir("dp-fingerprint");
  {
    app::Trainer first(synthetic_run(dir, {"run.stop_epoch=1"}), resume_from(""));
    first.run();
  }
  const std::string checkpoint = dir + "/checkpoint.h5";
  try {
    app::Trainer changed(synthetic_run(dir, {"data.synthetic_noise=0.5"}), resume_from(checkpoint));
    FAIL() << "a resume on other data was accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("this is not the data " + checkpoint + " was trained on"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("--allow-data-change"), std::string::npos) << e.what();
  }
  testing::internal::CaptureStderr();
  app::Trainer allowed(synthetic_run(dir, {"data.synthetic_noise=0.5"}), resume_from(checkpoint, true));
  const std::string said = testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find("warning: this is not the data"), std::string::npos) << said;
  EXPECT_EQ(allowed.epochs_done(), 1);
  fs::remove_all(dir);
}

TEST(DataFingerprint, CheckpointsFromBeforeFingerprintsResumeWithANote) {
  const std::string dir = fixture::temp_dir("dp-fingerprint");
  {
    app::Trainer first(synthetic_run(dir, {"run.stop_epoch=1"}), resume_from(""));
    first.run();
  }
  const std::string checkpoint = dir + "/checkpoint.h5";
  app::Checkpoint c = app::read_checkpoint(checkpoint);
  ASSERT_FALSE(c.data_fingerprint.empty());
  c.data_fingerprint.clear();
  app::write_checkpoint(checkpoint, c);
  ASSERT_EQ(io::read_tensor_file(checkpoint).strings.count("data_fingerprint"), 0u);
  testing::internal::CaptureStderr();
  app::Trainer resumed(synthetic_run(dir, {"data.synthetic_noise=0.5"}), resume_from(checkpoint));
  const std::string said = testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find(checkpoint + " records no data fingerprint"), std::string::npos) << said;
  EXPECT_EQ(resumed.epochs_done(), 1);
  fs::remove_all(dir);
}
