// The configuration reference (app/config_reference.h): docs/config.md is exactly what
// `dp-train --help-config` prints, and the reference names every key and dataset kind.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "app/config.h"
#include "app/config_reference.h"
#include "data/registry.h"

namespace {

TEST(ConfigReference, DocsPageIsTheGeneratedReference) {
  const char* src = std::getenv("DP_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "DP_SOURCE_DIR is not set (run through meson test)";
  const std::string path = std::string(src) + "/docs/config.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path << " is missing: generate it with `build/tools/dp-train --help-config > docs/config.md`";
  std::stringstream page;
  page << in.rdbuf();
  const std::string want = dp::app::config_reference(), got = page.str();
  if (got == want) return;
  std::istringstream a(got), b(want);
  std::string la, lb;
  int line = 1;
  while (std::getline(a, la) && std::getline(b, lb) && la == lb) ++line;
  FAIL() << "docs/config.md differs from the schema's reference from line " << line << " on:\n  page:   " << la
         << "\n  schema: " << lb
         << "\nregenerate it after changing app/config_schema.cpp (or a dataset kind): "
            "`build/tools/dp-train --help-config > docs/config.md`";
}

TEST(ConfigReference, NamesEveryKeyAndDatasetKind) {
  const std::string ref = dp::app::config_reference();
  for (const dp::app::ConfigKey& k : dp::app::config_schema()) {
    const std::string section = "## [" + k.path.substr(0, k.path.find('.')) + "]";
    const std::string key = "| `" + k.path.substr(k.path.find('.') + 1) + "` |";
    ASSERT_NE(ref.find(section), std::string::npos) << section;
    EXPECT_NE(ref.find(key, ref.find(section)), std::string::npos) << k.path << " is not in its section's table";
  }
  for (const std::string& kind : dp::data::dataset_kind_names())
    EXPECT_NE(ref.find("- `" + kind + "`: "), std::string::npos) << kind;
}

}  // namespace
