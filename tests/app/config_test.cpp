// Config validation: every class of mistake stops with the key's path (and line, from a file).
#include <gtest/gtest.h>

#include "engine/error.h"
#include "app/config.h"

using dp::app::Config;

namespace {

std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    Config::from_string(text, "run.toml", overrides);
  } catch (const dp::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Config, DefaultsAndValues) {
  Config c = Config::from_string("[optim]\nlr = 0.05\nmilestones = [10, 20]\n[run]\nepochs = 3\n");
  EXPECT_DOUBLE_EQ(c.get_float("optim.lr"), 0.05);
  EXPECT_EQ(c.get_int("run.epochs"), 3);
  EXPECT_EQ(c.get_int_list("optim.milestones"), (std::vector<int64_t>{10, 20}));
  EXPECT_DOUBLE_EQ(c.get_float("optim.momentum"), 0.9);  // default
  EXPECT_TRUE(c.was_set("optim.lr"));
  EXPECT_FALSE(c.was_set("optim.momentum"));
}

TEST(Config, IntegerAcceptedForFloat) {
  Config c = Config::from_string("[optim]\nlr = 1\n");
  EXPECT_DOUBLE_EQ(c.get_float("optim.lr"), 1.0);
}

TEST(Config, UnknownKeyNamesPathAndLine) {
  std::string e = error_of("[optim]\nlr = 0.1\nmomentun = 0.9\n");
  EXPECT_NE(e.find("optim.momentun"), std::string::npos) << e;
  EXPECT_NE(e.find("run.toml:3"), std::string::npos) << e;
}

TEST(Config, UnknownKeySuggestsNearest) {
  std::string e = error_of("[run]\nlr = 0.1\n");
  EXPECT_NE(e.find("run.lr"), std::string::npos) << e;
  EXPECT_NE(e.find("optim.lr"), std::string::npos) << e;
}

TEST(Config, UnknownSection) {
  std::string e = error_of("[optimiser]\nlr = 0.1\n");
  EXPECT_NE(e.find("[optimiser]"), std::string::npos) << e;
}

TEST(Config, WrongType) {
  std::string e = error_of("[run]\n\nepochs = \"ten\"\n");
  EXPECT_NE(e.find("run.epochs"), std::string::npos) << e;
  EXPECT_NE(e.find("run.toml:3"), std::string::npos) << e;
  EXPECT_NE(e.find("integer"), std::string::npos) << e;
}

TEST(Config, OutOfRange) {
  std::string e = error_of("[data]\nrand_fraction = 1.5\n");
  EXPECT_NE(e.find("data.rand_fraction"), std::string::npos) << e;
  EXPECT_NE(e.find("out of range"), std::string::npos) << e;
}

TEST(Config, NotAChoice) {
  std::string e = error_of("[run]\nprecision = \"fp8\"\n");
  EXPECT_NE(e.find("run.precision"), std::string::npos) << e;
  EXPECT_NE(e.find("bf16"), std::string::npos) << e;
}

TEST(Config, SyntaxErrorNamesLine) {
  std::string e = error_of("[run]\nepochs = = 3\n");
  EXPECT_NE(e.find("run.toml:2"), std::string::npos) << e;
}

TEST(Config, OverridesAreValidated) {
  Config c = Config::from_string("", "run.toml", {"optim.lr=0.2", "run.device=cuda"});
  EXPECT_DOUBLE_EQ(c.get_float("optim.lr"), 0.2);
  EXPECT_EQ(c.get_string("run.device"), "cuda");
  EXPECT_NE(error_of("", {"optim.lrr=0.2"}).find("optim.lrr"), std::string::npos);
  EXPECT_NE(error_of("", {"run.epochs=abc"}).find("run.epochs"), std::string::npos);
  EXPECT_NE(error_of("", {"run.epochs"}).find("key=value"), std::string::npos);
}

TEST(Config, ResolvedTextRoundTrips) {
  Config a = Config::from_string("[optim]\nlr = 0.05\n[data]\ndataset = \"cifar10\"\n");
  Config b = Config::from_string(a.resolved_toml());
  EXPECT_EQ(a.resolved_toml(), b.resolved_toml());
  EXPECT_DOUBLE_EQ(b.get_float("optim.lr"), 0.05);
  EXPECT_EQ(b.get_string("data.dataset"), "cifar10");
}

#include <filesystem>
#include <fstream>

// Every preset in configs/ must pass the schema (a renamed key must not silently break one).
TEST(Config, PresetsValidate) {
  const char* src = std::getenv("DP_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "DP_SOURCE_DIR not set (run through meson test)";
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(src) / "configs")) {
    if (entry.path().extension() != ".toml") continue;
    EXPECT_NO_THROW(Config::from_file(entry.path().string())) << entry.path();
    ++count;
  }
  EXPECT_GE(count, 6);
}

// Issue 13: NaN passed the range checks (`v < min || v > max` is false for NaN) and the run
// died later with "loss became nan" without naming the key; inf too.
TEST(Config, NonFiniteNumbersAreRefusedNamingTheKey) {
  for (const char* v : {"nan", "+nan", "-nan", "inf", "-inf"}) {
    std::string e = error_of(std::string("[optim]\nlr = ") + v + "\n");
    EXPECT_NE(e.find("run.toml:2"), std::string::npos) << v << ": " << e;
    EXPECT_NE(e.find("'optim.lr'"), std::string::npos) << v << ": " << e;
    EXPECT_NE(e.find("not a finite number"), std::string::npos) << v << ": " << e;
    e = error_of("", {std::string("optim.lr=") + v});
    EXPECT_NE(e.find("--set"), std::string::npos) << v << ": " << e;
    EXPECT_NE(e.find("'optim.lr'"), std::string::npos) << v << ": " << e;
  }
  EXPECT_NE(error_of("[data_parameters]\ninit_inst_param = nan\n").find("data_parameters.init_inst_param"),
            std::string::npos);
}

// Issue 13: a 50 MB value was echoed whole into the error.
TEST(Config, HugeValuesAreNotEchoedWhole) {
  const std::string huge(50'000'000, 'x');
  std::string e = error_of("", {"data.dataset=" + huge});
  EXPECT_NE(e.find("data.dataset"), std::string::npos) << e.substr(0, 300);
  EXPECT_LT(e.size(), 2000u);
  e = error_of("", {"optim.lr=" + huge});
  EXPECT_NE(e.find("optim.lr"), std::string::npos) << e.substr(0, 300);
  EXPECT_LT(e.size(), 2000u);
}

// Issue 13: a directory or an empty file given as the config read as an empty config, and
// dp-train started the defaults (WRN-28-10, 120 epochs) into ./runs/default.
TEST(Config, DirectoriesEmptyFilesAndConfigsWithoutDataOrModelAreRefused) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "dp-config-XXXXXX").string();
  const std::string dir = mkdtemp(tmpl.data());
  auto error_of_file = [](const std::string& path) -> std::string {
    try {
      Config::from_file(path);
    } catch (const dp::Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of_file(dir).find(dir + " is a directory"), std::string::npos) << error_of_file(dir);
  const std::string empty = dir + "/empty.toml";
  std::ofstream(empty) << "\n  \n";
  EXPECT_NE(error_of_file(empty).find("is empty"), std::string::npos) << error_of_file(empty);
  const std::string no_model = dir + "/no_model.toml";
  std::ofstream(no_model) << "[data]\ndataset = \"synthetic\"\n[optim]\nlr = 0.1\n";
  EXPECT_NE(error_of_file(no_model).find("has no [model] section"), std::string::npos) << error_of_file(no_model);
  const std::string no_data = dir + "/no_data.toml";
  std::ofstream(no_data) << "[model]\narch = \"tiny-cnn\"\n";
  EXPECT_NE(error_of_file(no_data).find("has no [data] section"), std::string::npos) << error_of_file(no_data);
  const std::string ok = dir + "/ok.toml";
  std::ofstream(ok) << "[data]\ndataset = \"synthetic\"\n[model]\narch = \"tiny-cnn\"\n";
  EXPECT_EQ(error_of_file(ok), "");
  std::filesystem::remove_all(dir);
}
