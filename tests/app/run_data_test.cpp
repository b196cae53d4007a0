// The run's datasets from the config (app/run_data.cpp).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "app/run_data.h"

using namespace dp;
namespace fs = std::filesystem;

namespace {

std::string temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "dp-rundata-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

void touch(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << "x";  // never decoded here
}

}  // namespace

// Issue 13: val/ without one of train/'s classes was labelled by its own sorted class list, so
// val "ship" became training's "cat" and accuracy was reported against shifted labels.
TEST(RunData, ImageFolderValidationLabelsFollowTheTrainingClasses) {
  std::string dir = temp_dir();
  for (const char* cls : {"airplane", "cat", "ship"}) touch(dir + "/train/" + cls + "/0.jpg");
  touch(dir + "/val/airplane/0.jpg");
  touch(dir + "/val/ship/0.jpg");  // no val/cat
  app::Config c = app::Config::from_string(
      "", "test.toml", {"data.dataset=imagefolder", "data.path=" + dir, "model.arch=tiny-cnn", "data.image_size=32"});
  app::RunData r = app::make_run_data(c);
  EXPECT_EQ(r.num_classes, 3);
  ASSERT_EQ(r.test->size(), 2);
  EXPECT_EQ(r.test->label(0), 0);
  EXPECT_EQ(r.test->label(1), 2) << "val/ship must keep training's label for ship";
  EXPECT_EQ(r.test->num_classes(), 3);

  touch(dir + "/val/zebra/0.jpg");
  try {
    app::make_run_data(c);
    ADD_FAILURE() << "a validation class unknown to the training set was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zebra"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
