// Event files read back and trimmed (a resumed run drops what the stopped run logged after its
// checkpoint, issue 20): entries as written, a trim keeping a predicate, a record cut short at
// the end dropped, a damaged record named.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "io/event_file.h"
#include "io/event_writer.h"

using namespace dp;

namespace {

std::string events_with_steps(const std::string& dir) {
  io::EventWriter w(dir);
  for (int64_t step = 1; step <= 4; ++step) w.add_scalar("train_iteration_stats/loss", 1.0 / step, step);
  w.add_scalar("val/accuracy", 50.0, 0);
  w.add_histogram("epoch_stats_inst_parameter", io::Histogram{0, 1, 2, 1, 1, {1}, {2}}, 0);
  w.flush();
  return w.path();
}

}  // namespace

TEST(EventFile, ReadsBackAndTrims) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "dp-events-XXXXXX").string();
  const std::string dir = mkdtemp(tmpl.data());
  const std::string path = events_with_steps(dir);
  std::vector<io::EventEntry> e = io::read_event_entries(path);
  ASSERT_EQ(e.size(), 7u);  // the file version, 4 scalars, 1 scalar, 1 histogram
  EXPECT_EQ(e[0].tag, "");
  EXPECT_EQ(e[3].tag, "train_iteration_stats/loss");
  EXPECT_EQ(e[3].step, 3);
  EXPECT_EQ(e[6].tag, "epoch_stats_inst_parameter");

  // A record cut short (a killed writer) ends the list, and a trim drops it.
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 3);
  EXPECT_EQ(io::read_event_entries(path).size(), 6u);
  EXPECT_EQ(io::trim_event_file(path, [](const std::string& tag, int64_t step) {
              return tag.rfind("train_iteration_stats/", 0) != 0 || step <= 2;
            }),
            2);
  e = io::read_event_entries(path);
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[2].step, 2);
  EXPECT_EQ(e[3].tag, "val/accuracy");
  EXPECT_EQ(io::trim_event_file(path, [](const std::string&, int64_t) { return true; }), 0);

  // A damaged record is named, not skipped silently.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(path) - 6));
    f.put('\x55');
  }
  EXPECT_THROW(io::read_event_entries(path), Error);
  std::filesystem::remove_all(dir);
}
