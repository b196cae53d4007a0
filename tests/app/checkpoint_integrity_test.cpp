// Checkpoint integrity (issue 13: of 20 one-bit flips, 12 changed dp-inspect's output silently;
// zeroed 4 KiB blocks passed too). Every damaged byte must either be caught with an error naming
// the file, or leave what is read exactly as written; never a silently different result.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "tests/app/checkpoint_fixture.h"

using namespace dp;

namespace {

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// "" when `a` and `b` hold the same tensors (bit for bit) and attributes, else what differs.
std::string difference(const app::Checkpoint& a, const app::Checkpoint& b) {
  io::TensorFile x = app::encode_checkpoint(a), y = app::encode_checkpoint(b);
  if (x.ints != y.ints || x.floats != y.floats || x.strings != y.strings) return "attributes";
  if (x.tensors.size() != y.tensors.size()) return "number of tensors";
  for (const auto& [name, t] : x.tensors) {
    const Tensor* u = y.find(name);
    if (u == nullptr || u->shape() != t.shape() || u->dtype() != t.dtype() ||
        std::memcmp(u->raw_data(), t.raw_data(), t.nbytes()) != 0)
      return name;
  }
  return "";
}

struct DamageReport {
  int caught = 0, harmless = 0;
  std::vector<std::string> silent;  // offsets whose damage changed the result
};

// Applies `damage` to a fresh copy of the checkpoint for every offset and reads it back.
template <class Damage>
DamageReport damage_each(const std::vector<size_t>& offsets, Damage damage) {
  std::string dir = fixture::temp_dir("dp-integrity");
  std::string path = dir + "/checkpoint.h5";
  app::Checkpoint original = fixture::small_checkpoint();
  app::write_checkpoint(path, original);
  const std::vector<char> clean = read_bytes(path);
  DamageReport r;
  for (size_t offset : offsets) {
    std::vector<char> bytes = clean;
    damage(bytes, offset);
    write_bytes(path, bytes);
    try {
      std::string diff = difference(original, app::read_checkpoint(path));
      if (diff.empty())
        ++r.harmless;
      else
        r.silent.push_back(std::to_string(offset) + " (" + diff + ")");
    } catch (const Error& e) {
      ++r.caught;
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "offset " << offset << ": " << e.what();
    }
  }
  std::filesystem::remove_all(dir);
  return r;
}

size_t file_size_of_fixture() {
  std::string dir = fixture::temp_dir("dp-integrity");
  app::write_checkpoint(dir + "/c.h5", fixture::small_checkpoint());
  size_t n = std::filesystem::file_size(dir + "/c.h5");
  std::filesystem::remove_all(dir);
  return n;
}

// The fixture as the golden files hold it: they were written before the per-sample loss record
// (issue 23), and still load, without it.
app::Checkpoint fixture_before_loss_record() {
  app::Checkpoint c = fixture::small_checkpoint();
  c.sample_loss = {};
  return c;
}

std::string first(const std::vector<std::string>& v, size_t n = 8) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < n; ++i) s += v[i] + " ";
  return s;
}

}  // namespace

// A checkpoint written before checksums existed (same layout, contiguous datasets, HDF5's
// default file format) still loads, with the very same contents.
TEST(CheckpointIntegrity, ACheckpointWithoutChecksumsStillLoads) {
  const char* src = std::getenv("DP_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "DP_SOURCE_DIR is not set (run through meson test)";
  app::Checkpoint old = app::read_checkpoint(std::string(src) + "/tests/app/golden/checkpoint_v1_no_checksums.h5");
  EXPECT_EQ(difference(old, fixture_before_loss_record()), "");
}

// The checksummed format as this dp-engine writes it (also the checkpoint fuzzer's seed).
TEST(CheckpointIntegrity, TheCurrentFormatGoldenLoads) {
  const char* src = std::getenv("DP_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "DP_SOURCE_DIR is not set (run through meson test)";
  app::Checkpoint c = app::read_checkpoint(std::string(src) + "/tests/app/golden/checkpoint_v1.h5");
  EXPECT_EQ(difference(c, fixture_before_loss_record()), "");
}

// A mid-epoch checkpoint (issue 20: the run-progress part with the position in the epoch) as
// this dp-engine writes it; DP_WRITE_GOLDENS=1 rewrites the file from the fixture.
TEST(CheckpointIntegrity, TheMidEpochGoldenLoads) {
  const char* src = std::getenv("DP_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "DP_SOURCE_DIR is not set (run through meson test)";
  const std::string path = std::string(src) + "/tests/app/golden/checkpoint_v1_mid_epoch.h5";
  if (std::getenv("DP_WRITE_GOLDENS") != nullptr) app::write_checkpoint(path, fixture::mid_epoch_checkpoint());
  app::Checkpoint c = app::read_checkpoint(path);
  EXPECT_EQ(difference(c, fixture::mid_epoch_checkpoint()), "");
  EXPECT_EQ(c.progress.epoch_step, 3);
  ASSERT_EQ(c.progress.ranks.size(), 2u);
  EXPECT_EQ(c.progress.ranks[1].totals.top5, 6);
}

TEST(CheckpointIntegrity, EveryFlippedBitIsCaughtOrHarmless) {
  std::vector<size_t> offsets;
  for (size_t o = 0; o < file_size_of_fixture(); o += 41) offsets.push_back(o);
  DamageReport r = damage_each(offsets, [](std::vector<char>& b, size_t o) { b[o] ^= 0x10; });
  EXPECT_TRUE(r.silent.empty()) << r.silent.size() << " of " << offsets.size()
                                << " flips changed the result silently, at offsets " << first(r.silent);
  EXPECT_GT(r.caught, static_cast<int>(offsets.size()) / 2) << "most of the file is checksummed data or metadata";
}

TEST(CheckpointIntegrity, EveryZeroedBlockIsCaughtOrHarmless) {
  std::vector<size_t> offsets;
  for (size_t o = 0; o < file_size_of_fixture(); o += 1024) offsets.push_back(o);  // 4 KiB blocks, overlapping
  DamageReport r = damage_each(offsets, [](std::vector<char>& b, size_t o) {
    std::fill(b.begin() + static_cast<std::ptrdiff_t>(o), b.begin() + static_cast<std::ptrdiff_t>(std::min(o + 4096, b.size())), 0);
  });
  EXPECT_TRUE(r.silent.empty()) << r.silent.size() << " zeroed blocks changed the result silently, at offsets "
                                << first(r.silent);
}

TEST(CheckpointIntegrity, ATruncatedFileIsCaught) {
  std::vector<size_t> lengths;
  const size_t n = file_size_of_fixture();
  for (size_t l = 0; l < n; l += n / 23 + 1) lengths.push_back(l);
  lengths.push_back(n - 1);
  DamageReport r = damage_each(lengths, [](std::vector<char>& b, size_t l) { b.resize(l); });
  EXPECT_TRUE(r.silent.empty()) << first(r.silent);
  EXPECT_EQ(r.harmless, 0) << "a truncated checkpoint was read as complete";
}
