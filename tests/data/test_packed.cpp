// The packed dataset kind (data/packed.h): packing an image folder and reading it back gives the
// same images (decoded pixels), labels and order; subsets and copied label columns are right;
// truncated, corrupt or malformed pack files fail with a message naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "data/file_io.h"
#include "data/image_folder.h"
#include "data/jpeg_decode.h"
#include "data/packed.h"
#include "data_test_util.h"
#include "engine/error.h"
#include "tests/common/error_of.h"

using namespace dp::data;
namespace fs = std::filesystem;

namespace {

// A small class-folder dataset of real JPEGs with distinct random pixels:
// ROOT/train/<cls>/NNNN.jpg, `counts[c]` files for class c.
void write_jpeg_folder(const std::string& root, const std::vector<std::string>& classes,
                       const std::vector<int>& counts) {
  cv::RNG rng(7);
  for (size_t c = 0; c < classes.size(); ++c) {
    const fs::path dir = fs::path(root) / "train" / classes[c];
    fs::create_directories(dir);
    for (int i = 0; i < counts[c]; ++i) {
      cv::Mat m(8 + i % 3, 9 + static_cast<int>(c), CV_8UC3);
      rng.fill(m, cv::RNG::UNIFORM, 0, 256);
      char name[16];
      std::snprintf(name, sizeof name, "%04d.jpg", i);
      ASSERT_TRUE(cv::imwrite((dir / name).string(), m));
    }
  }
}

Image decode(const RawSample& s) { return decode_image(s.encoded.data(), s.encoded.size(), {}, s.source).image; }

// Every packed sample is the source sample `kept[i]`: same bytes, same decoded pixels, same label.
void expect_same_images(const Dataset& source, const PackedDataset& packed, const std::vector<int64_t>& kept) {
  ASSERT_EQ(packed.size(), static_cast<int64_t>(kept.size()));
  for (int64_t i = 0; i < packed.size(); ++i) {
    const RawSample a = source.load(kept[static_cast<size_t>(i)]), b = packed.load(i);
    ASSERT_EQ(b.index, i);
    ASSERT_EQ(packed.label(i), source.label(kept[static_cast<size_t>(i)])) << "index " << i;
    ASSERT_EQ(packed.orig_index(i), kept[static_cast<size_t>(i)]) << "index " << i;
    const Image pa = decode(a), pb = decode(b);
    ASSERT_EQ(pa.height, pb.height);
    ASSERT_EQ(pa.width, pb.width);
    ASSERT_EQ(pa.pixels, pb.pixels) << "index " << i << " (" << b.source << ")";
  }
}

using dp::testing::error_of;

class PackedFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    write_jpeg_folder(src_.path(), classes_, {5, 3, 4});
    ImageFolderOptions o;
    o.root = src_.path() + "/train";
    o.class_order = classes_;
    source_ = std::make_unique<ImageFolderDataset>(o);
  }
  std::string pack(const PackOptions& options) {
    PackOptions po = options;
    po.source_root = src_.path();
    write_packed_split(*source_, classes_, out_.path(), "train", po);
    return out_.path();
  }
  const std::vector<std::string> classes_ = {"cat", "ant", "bee"};
  test_util::TempDir src_, out_;
  std::unique_ptr<ImageFolderDataset> source_;
};

}  // namespace

TEST_F(PackedFolder, RoundTripKeepsPixelsLabelsAndOrder) {
  const std::string dir = pack({});
  PackedDataset packed(dir, "train");
  EXPECT_EQ(packed.classes(), classes_);
  EXPECT_EQ(packed.num_classes(), 3);
  std::vector<int64_t> all(static_cast<size_t>(source_->size()));
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  expect_same_images(*source_, packed, all);
  EXPECT_NE(packed.source(5).find("train/ant/0000.jpg"), std::string::npos) << packed.source(5);
  EXPECT_NE(packed.source(5).find("train.jpgs"), std::string::npos) << packed.source(5);
}

TEST_F(PackedFolder, FirstKPerClassInSourceOrder) {
  PackOptions po;
  po.per_class = 2;
  PackedDataset packed(pack(po), "train");
  // Source order: cat 0..4, ant 5..7, bee 8..11.
  expect_same_images(*source_, packed, {0, 1, 5, 6, 8, 9});
}

TEST_F(PackedFolder, CopiesLabelColumnsByOrigIndex) {
  const std::string csv = out_.path() + "/labels.csv";
  std::ofstream f(csv);
  f << "orig_index,path,noisy\n";
  for (int i = source_->size() - 1; i >= 0; --i) f << i << ",x," << (i * 7) % 3 << "\n";  // any row order
  f.close();
  PackOptions po;
  po.per_class = 2;
  po.labels_csv = csv;
  po.label_columns = {"noisy"};
  const std::string dir = pack(po);
  const auto lines = read_lines(dir + "/train.csv");
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(lines[0], "index,offset,length,crc32,label,orig_index,source,noisy");
  const std::vector<int> kept = {0, 1, 5, 6, 8, 9};
  for (size_t r = 0; r < kept.size(); ++r) {
    const auto fields = split_csv_line(lines[r + 1]);
    ASSERT_EQ(fields.size(), 8u);
    EXPECT_EQ(fields[5], std::to_string(kept[r]));
    EXPECT_EQ(fields[7], std::to_string((kept[r] * 7) % 3));
  }
  PackedDataset packed(dir, "train");  // extra columns are allowed
  EXPECT_EQ(packed.size(), 6);
}

TEST_F(PackedFolder, TruncatedImageFileNamesTheFile) {
  const std::string dir = pack({});
  const std::string images = dir + "/train.jpgs";
  fs::resize_file(images, fs::file_size(images) - 10);
  const std::string msg = error_of([&] { PackedDataset p(dir, "train"); });
  EXPECT_NE(msg.find(images), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST_F(PackedFolder, CorruptByteNamesTheFileAndImage) {
  const std::string dir = pack({});
  const std::string images = dir + "/train.jpgs";
  PackedDataset clean(dir, "train");
  const auto lines = read_lines(dir + "/train.csv");
  const uint64_t offset_of_3 = std::stoull(split_csv_line(lines[4])[1]);
  {
    std::fstream f(images, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset_of_3 + 40));
    char c = 0;
    f.seekg(static_cast<std::streamoff>(offset_of_3 + 40));
    f.get(c);
    f.seekp(static_cast<std::streamoff>(offset_of_3 + 40));
    f.put(static_cast<char>(c ^ 0x5A));
  }
  PackedDataset packed(dir, "train");
  EXPECT_NO_THROW(packed.load(2));
  const std::string msg = error_of([&] { packed.load(3); });
  EXPECT_NE(msg.find(images), std::string::npos) << msg;
  EXPECT_NE(msg.find("corrupt at image 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("train/cat/0003.jpg"), std::string::npos) << msg;
}

TEST_F(PackedFolder, MalformedIndexNamesFileAndLine) {
  const std::string dir = pack({});
  const std::string index = dir + "/train.csv";
  auto lines = read_lines(index);
  lines[3] = "2,abc,1,0,0,2,x";
  std::ofstream f(index, std::ios::trunc);
  for (const auto& l : lines) f << l << "\n";
  f.close();
  const std::string msg = error_of([&] { PackedDataset p(dir, "train"); });
  EXPECT_NE(msg.find(index + "' line 4"), std::string::npos) << msg;

  std::ofstream g(index, std::ios::trunc);
  g << "offset,length\n0,10\n";
  g.close();
  const std::string msg2 = error_of([&] { PackedDataset p(dir, "train"); });
  EXPECT_NE(msg2.find(index), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("does not start with the columns"), std::string::npos) << msg2;
}

TEST_F(PackedFolder, MissingSplitNamesTheFolder) {
  const std::string dir = pack({});
  const std::string msg = error_of([&] { PackedDataset p(dir, "test"); });
  EXPECT_NE(msg.find("has no test.csv"), std::string::npos) << msg;
}

// The real CIFAR-10 JPEG export with CIFAR-10N's order and labels: the packed subset is the
// folder's first K per class in CIFAR's original order, image for image.
TEST(PackedCifar10, SubsetMatchesTheFolder) {
  const std::string shared = test_util::shared_data_dir();
  if (shared.empty()) GTEST_SKIP() << "../shared/data not found: skipping the CIFAR-10 pack check";
  test_util::TempDir src, out;
  ASSERT_TRUE(test_util::extract_tar(shared + "/cifar10-jpeg.tar", src.path()));
  const std::string csv = shared + "/cifar10n-labels.csv";
  for (const bool train : {true, false}) {
    auto folder = cifar10_jpeg_folder(src.path(), train, train ? csv : "");
    PackOptions po;
    po.per_class = train ? 30 : 10;
    po.source_root = src.path();
    if (train) {
      po.labels_csv = csv;
      po.label_columns = {"worse_label"};
    }
    const std::string split = train ? "train" : "test";
    write_packed_split(*folder, folder->classes(), out.path(), split, po);
    PackedDataset packed(out.path(), split);
    std::vector<int64_t> kept, seen(10, 0);
    for (int64_t i = 0; i < folder->size(); ++i)
      if (seen[static_cast<size_t>(folder->label(i))]++ < po.per_class) kept.push_back(i);
    expect_same_images(*folder, packed, kept);
    // First K per class in CIFAR's order is NNNN < K in every class folder.
    for (int64_t i = 0; i < packed.size(); ++i) {
      const std::string name = fs::path(folder->path(kept[static_cast<size_t>(i)])).stem().string();
      ASSERT_LT(std::stoi(name), po.per_class) << packed.source(i);
    }
  }
  // The copied CIFAR-10N column equals the CSV's row for that orig_index (the CSV is in orig order).
  const auto labels = read_lines(csv);
  const auto packed_rows = read_lines(out.path() + "/train.csv");
  for (size_t r = 1; r < packed_rows.size(); ++r) {
    const auto f = split_csv_line(packed_rows[r]);
    const auto g = split_csv_line(labels[std::stoul(f[5]) + 1]);
    ASSERT_EQ(f[6], g[1]) << packed_rows[r];  // source path
    ASSERT_EQ(f[7], g[4]) << packed_rows[r];  // worse_label
  }
}
