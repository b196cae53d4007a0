// io::LineLog: lines appended whole, and a failing write (a full disk: /dev/full, or an injected
// fault) throws naming the file instead of losing the line without a word.
#include "io/line_log.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "io/io_fault.h"
#include "tests/common/error_of.h"

namespace dp {
namespace {

using testing::error_of;

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(LineLog, AppendsWholeLinesAfterWhatIsThere) {
  const std::string path = (std::filesystem::temp_directory_path() / "dp-line-log-test.jsonl").string();
  { std::ofstream(path) << "{\"old\":1}\n"; }
  {
    io::LineLog log(path);
    log.append("{\"a\":1}");
    log.append("{\"b\":2}");
  }
  EXPECT_EQ(read_all(path), "{\"old\":1}\n{\"a\":1}\n{\"b\":2}\n");
  std::filesystem::remove(path);
}

TEST(LineLog, AFullDiskThrowsNamingTheFile) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  io::LineLog log("/dev/full");
  const std::string e = error_of([&] { log.append("{\"epoch\":1}"); });
  EXPECT_NE(e.find("cannot append to /dev/full"), std::string::npos) << e;
  EXPECT_NE(e.find("free space"), std::string::npos) << e;
}

TEST(LineLog, AnInjectedWriteFaultThrows) {
  const std::string path = (std::filesystem::temp_directory_path() / "metrics.jsonl").string();
  io::LineLog log(path);
  io::set_io_fault("write:metrics.jsonl");
  const std::string e = error_of([&] { log.append("{}"); });
  io::set_io_fault("");
  EXPECT_NE(e.find("cannot append to " + path), std::string::npos) << e;
  std::filesystem::remove(path);
}

TEST(LineLog, AFolderThatCannotHoldItIsNamed) {
  const std::string e = error_of([] { io::LineLog("/nonexistent-dp-folder/metrics.jsonl"); });
  EXPECT_NE(e.find("cannot open /nonexistent-dp-folder/metrics.jsonl"), std::string::npos) << e;
}

}  // namespace
}  // namespace dp
