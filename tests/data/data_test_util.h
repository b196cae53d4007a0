// Helpers shared by the data tests: locating ../shared/data and private temporary folders.
#pragma once
#include <string>
#include <vector>

namespace dp::data::test_util {

// $DP_SHARED_DIR/data when it exists (meson test sets DP_SHARED_DIR), else "" (tests then skip).
std::string shared_data_dir();
// $DP_SOURCE_DIR or the compiled-in source root.
std::string source_dir();

// A fresh directory from mkdtemp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Extracts `tar` into `dir` (optionally only members matching the wildcard patterns);
// returns false if tar failed.
bool extract_tar(const std::string& tar, const std::string& dir,
                 const std::vector<std::string>& patterns = {});

void write_file(const std::string& path, const std::string& bytes);

// A baseline JPEG of a w x h gradient (TurboJPEG), and malformed variants of one: its SOF
// segment cut out, or its SOF's size fields overwritten.
std::vector<unsigned char> make_jpeg(int width, int height);
std::vector<unsigned char> jpeg_without_sof(const std::vector<unsigned char>& jpeg);
std::vector<unsigned char> jpeg_with_sof_size(const std::vector<unsigned char>& jpeg, int width, int height);
// Only the tables: SOF and everything from SOS on replaced by EOI (TurboJPEG reads no size).
std::vector<unsigned char> jpeg_tables_only(const std::vector<unsigned char>& jpeg);

}  // namespace dp::data::test_util

namespace tu = dp::data::test_util;
