#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>

#include "data/cifar_binary.h"
#include "data/dataset_slice.h"
#include "data/file_io.h"
#include "data/image_folder.h"
#include "data/jpeg_decode.h"
#include "data/synthetic.h"
#include "data_test_util.h"
#include "engine/error.h"

using namespace dp::data;
namespace fs = std::filesystem;

// A record's pixel bytes encode (record, channel, position) so the HWC conversion is checkable.
static uint8_t cifar_pixel(int64_t record, int64_t channel, int64_t position) {
  return static_cast<uint8_t>((record * 31 + channel * 7 + position) & 0xFF);
}

static void write_cifar_file(const std::string& path, int64_t records, int64_t label_bytes,
                             int64_t first_record) {
  std::string bytes;
  for (int64_t r = 0; r < records; ++r) {
    const int64_t rec = first_record + r;
    if (label_bytes == 2) bytes += static_cast<char>(rec % 20);  // coarse label
    bytes += static_cast<char>(rec % (label_bytes == 2 ? 100 : 10));
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t p = 0; p < 1024; ++p) bytes += static_cast<char>(cifar_pixel(rec, c, p));
  }
  tu::write_file(path, bytes);
}

TEST(CifarBinary, Cifar10TrainAndTest) {
  tu::TempDir dir;
  const fs::path nested = fs::path(dir.path()) / "cifar-10-batches-bin";
  fs::create_directories(nested);
  for (int b = 1; b <= 5; ++b)
    write_cifar_file((nested / ("data_batch_" + std::to_string(b) + ".bin")).string(), 3, 1, (b - 1) * 3);
  write_cifar_file((nested / "test_batch.bin").string(), 4, 1, 100);
  CifarBinaryDataset train(dir.path(), CifarVariant::kCifar10, true);
  ASSERT_EQ(train.size(), 15);
  EXPECT_EQ(train.num_classes(), 10);
  for (int64_t i = 0; i < 15; ++i) {
    EXPECT_EQ(train.label(i), i % 10);
    const RawSample s = train.load(i);
    ASSERT_EQ(s.image.height, 32);
    ASSERT_EQ(s.image.channels, 3);
    for (int64_t p : {0, 17, 1023})
      for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(s.image.pixels[3 * p + c], cifar_pixel(i, c, p));
  }
  EXPECT_NE(train.source(4).find("data_batch_2.bin record 1"), std::string::npos);
  CifarBinaryDataset test(nested.string(), CifarVariant::kCifar10, false);
  EXPECT_EQ(test.size(), 4);
  EXPECT_EQ(test.label(0), 0);  // record 100 -> 100 % 10
}

TEST(CifarBinary, Cifar100UsesFineLabel) {
  tu::TempDir dir;
  write_cifar_file(dir.path() + "/train.bin", 5, 2, 40);
  CifarBinaryDataset train(dir.path(), CifarVariant::kCifar100, true);
  ASSERT_EQ(train.size(), 5);
  EXPECT_EQ(train.num_classes(), 100);
  for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(train.label(i), 40 + i);
  EXPECT_EQ(train.load(2).image.pixels[5], cifar_pixel(42, 2, 1));
}

TEST(CifarBinary, ErrorsNameTheFile) {
  tu::TempDir dir;
  tu::write_file(dir.path() + "/test_batch.bin", std::string(3073 + 5, '\0'));
  try {
    CifarBinaryDataset bad(dir.path(), CifarVariant::kCifar10, false);
    FAIL() << "truncated file accepted";
  } catch (const dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("test_batch.bin"), std::string::npos);
  }
  EXPECT_THROW(CifarBinaryDataset(dir.path(), CifarVariant::kCifar10, true), dp::Error);
}

// Issue 13: a CIFAR batch that is a directory gave std::bad_alloc (data/file_io.cpp).
TEST(CifarBinary, ABatchThatIsADirectoryIsNamed) {
  tu::TempDir dir;
  fs::create_directories(dir.path() + "/test_batch.bin");
  try {
    CifarBinaryDataset bad(dir.path(), CifarVariant::kCifar10, false);
    ADD_FAILURE() << "a directory was read as a CIFAR batch";
  } catch (const dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("test_batch.bin' is a directory"), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "raw exception: " << e.what();
  }
}

TEST(Synthetic, DeterministicBalancedAndClassDependent) {
  SyntheticOptions options;
  options.size = 200;
  options.seed = 3;
  SyntheticDataset a(options), b(options);
  options.seed = 4;
  SyntheticDataset c(options);
  EXPECT_EQ(a.load(17).image.pixels, b.load(17).image.pixels);
  EXPECT_NE(a.load(17).image.pixels, c.load(17).image.pixels);
  std::vector<int> counts(10, 0);
  for (int64_t i = 0; i < 200; ++i) ++counts[a.label(i)];
  for (int n : counts) EXPECT_EQ(n, 20);
  // Learnable: the mean image of a class correlates with its own samples more than with others'.
  auto mean_of = [&](int64_t cls) {
    std::vector<double> m(32 * 32 * 3, 0.0);
    for (int64_t i = cls; i < 200; i += 10) {
      const auto px = a.load(i).image.pixels;
      for (size_t k = 0; k < m.size(); ++k) m[k] += px[k] / 20.0;
    }
    return m;
  };
  const auto m0 = mean_of(0), m1 = mean_of(1);
  double var0 = 0, var1 = 0;
  for (size_t k = 0; k < m0.size(); ++k) {
    var0 += (m0[k] - 128) * (m0[k] - 128);
    var1 += (m0[k] - m1[k]) * (m0[k] - m1[k]);
  }
  EXPECT_GT(var1, 0.0);
  EXPECT_GT(var0 + var1, 0.0);
}

TEST(DatasetSlice, SharesCoverEverySampleOnceInRankOrder) {
  for (int64_t n : {0, 1, 5, 203, 256})
    for (int64_t world : {1, 2, 3, 8}) {
      EXPECT_EQ(share_begin(n, 0, world), 0);
      EXPECT_EQ(share_begin(n, world, world), n) << n << " samples over " << world;
      for (int64_t r = 0; r < world; ++r) {
        const int64_t size = share_begin(n, r + 1, world) - share_begin(n, r, world);
        EXPECT_TRUE(size == n / world || size == n / world + 1) << "rank " << r << " of " << world << ": " << size;
      }
    }
  EXPECT_THROW(share_begin(10, 3, 2), dp::Error);
}

TEST(DatasetSlice, ARangeOfTheBaseKeepingItsIndices) {
  SyntheticOptions options;
  options.size = 23;
  auto base = std::make_shared<SyntheticDataset>(options);
  DatasetSlice slice(base, 12, 23);
  EXPECT_EQ(slice.size(), 11);
  EXPECT_EQ(slice.num_classes(), base->num_classes());
  EXPECT_EQ(slice.begin(), 12);
  for (int64_t i = 0; i < slice.size(); ++i) {
    EXPECT_EQ(slice.label(i), base->label(12 + i));
    EXPECT_EQ(slice.source(i), base->source(12 + i));
    const RawSample s = slice.load(i);
    EXPECT_EQ(s.index, 12 + i) << "the base index, which keys the sample's augmentation";
    EXPECT_EQ(s.image.pixels, base->load(12 + i).image.pixels);
  }
  EXPECT_THROW(slice.load(11), dp::Error);
  EXPECT_THROW(slice.label(-1), dp::Error);
  EXPECT_THROW(DatasetSlice(base, 5, 24), dp::Error);
  EXPECT_THROW(DatasetSlice(base, 6, 5), dp::Error);
  EXPECT_EQ(DatasetSlice(base, 23, 23).size(), 0);
}

static void write_png(const std::string& path, int value, int h = 4, int w = 5) {
  cv::Mat m(h, w, CV_8UC3, cv::Scalar(value, value, value));
  ASSERT_TRUE(cv::imwrite(path, m));
}

TEST(ImageFolder, SortedClassesAndFiles) {
  tu::TempDir dir;
  for (const char* cls : {"b_class", "a_class"}) fs::create_directories(dir.path() + "/" + cls);
  write_png(dir.path() + "/b_class/2.png", 10);
  write_png(dir.path() + "/b_class/10.png", 20);
  write_png(dir.path() + "/a_class/z.png", 30);
  tu::write_file(dir.path() + "/a_class/notes.txt", "not an image");
  ImageFolderOptions options;
  options.root = dir.path();
  ImageFolderDataset ds(options);
  ASSERT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.classes(), (std::vector<std::string>{"a_class", "b_class"}));
  EXPECT_EQ(fs::path(ds.path(0)).filename(), "z.png");
  EXPECT_EQ(fs::path(ds.path(1)).filename(), "10.png");  // byte order, like Python's sorted()
  EXPECT_EQ(fs::path(ds.path(2)).filename(), "2.png");
  EXPECT_EQ(ds.label(0), 0);
  EXPECT_EQ(ds.label(2), 1);
  const RawSample s = ds.load(1);
  EXPECT_EQ(s.index, 1);
  EXPECT_FALSE(s.encoded.empty());
  const Decoded d = decode_image(s.encoded.data(), s.encoded.size(), {}, s.source);
  EXPECT_EQ(d.image.height, 4);
  EXPECT_EQ(d.image.pixels[0], 20);
}

// Issue 13: a validation folder missing one training class was re-indexed by its own class
// list (val "ship" became training's "cat"). With the training classes given, a missing class
// is fine and an unknown one is an error.
TEST(ImageFolder, ValidationClassesMapThroughTheTrainingClasses) {
  tu::TempDir dir;
  for (const char* cls : {"cat", "ship"}) fs::create_directories(dir.path() + "/" + cls);
  write_png(dir.path() + "/cat/0.png", 10);
  write_png(dir.path() + "/ship/0.png", 20);
  ImageFolderOptions options;
  options.root = dir.path();
  options.class_order = {"car", "cat", "dog", "ship"};
  options.subset_of_classes = true;
  ImageFolderDataset ds(options);
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.num_classes(), 4);
  EXPECT_EQ(ds.label(0), 1);
  EXPECT_EQ(ds.label(1), 3);
  fs::create_directories(dir.path() + "/zebra");
  try {
    ImageFolderDataset{options};
    ADD_FAILURE() << "an unknown class folder was accepted";
  } catch (const dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("zebra' is not one of the training set's 4 classes"), std::string::npos)
        << e.what();
  }
}

// Issue 13: a symbolic link loop escaped as a raw std::filesystem_error.
TEST(ImageFolder, ASymlinkLoopIsAnErrorNamingTheFolder) {
  tu::TempDir dir;
  fs::create_directories(dir.path() + "/cat");
  write_png(dir.path() + "/cat/0.png", 10);
  fs::create_directory_symlink(dir.path() + "/cat", dir.path() + "/cat/again");
  ImageFolderOptions options;
  options.root = dir.path();
  try {
    ImageFolderDataset{options};
    ADD_FAILURE() << "a symlink loop was accepted";
  } catch (const dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path() + "/cat"), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "raw exception: " << e.what();
  }
}

TEST(ImageFolder, ValidationLayoutWithLabelsFile) {
  tu::TempDir dir;
  fs::create_directories(dir.path() + "/val");
  write_png(dir.path() + "/val/img b.png", 1);
  write_png(dir.path() + "/val/img_a.png", 2);
  tu::write_file(dir.path() + "/labels.txt", "img_a.png\tn02\nimg b.png\tn01\n");
  ImageFolderOptions options;
  options.root = dir.path() + "/val";
  options.labels_file = dir.path() + "/labels.txt";
  ImageFolderDataset ds(options);
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.classes(), (std::vector<std::string>{"n01", "n02"}));
  EXPECT_EQ(fs::path(ds.path(0)).filename(), "img b.png");
  EXPECT_EQ(ds.label(0), 0);
  EXPECT_EQ(ds.label(1), 1);
  options.class_order = {"n02", "n01"};
  EXPECT_EQ(ImageFolderDataset(options).label(0), 1);
  tu::write_file(dir.path() + "/labels.txt", "img_a.png 5\nmissing.png 3\n");
  EXPECT_THROW(ImageFolderDataset{options}, dp::Error);
}

// Extracting all 60,000 files takes 2 s on an idle machine but over a minute on a busy one, so
// by default the test extracts images 0000-0049 of every class (tar wildcards, 600 files) and
// checks the index order on that subset; DP_FULL_CIFAR_JPEG=1 runs it on the whole set.
TEST(Cifar10Jpeg, RealFilesCountsLabelsAndIndexOrder) {
  const std::string data = tu::shared_data_dir();
  if (data.empty()) GTEST_SKIP() << "../shared/data is absent: CIFAR-10 JPEG test skipped";
  const bool full = std::getenv("DP_FULL_CIFAR_JPEG") != nullptr;
  tu::TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(tu::extract_tar(data + "/cifar10-jpeg.tar", dir.path(),
                              full ? std::vector<std::string>{} : std::vector<std::string>{"*/00[0-4]?.jpg"}));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "extracted " << (full ? "all of" : "a subset of") << " cifar10-jpeg.tar in " << seconds << " s\n";
  const int64_t per_class_train = full ? 5000 : 50, per_class_test = full ? 1000 : 50;

  auto test = cifar10_jpeg_folder(dir.path(), false);
  EXPECT_EQ(test->size(), 10 * per_class_test);
  EXPECT_EQ(test->label(0), 0);
  EXPECT_EQ(test->label(test->size() - 1), 9);
  EXPECT_EQ(fs::path(test->path(per_class_test)).parent_path().filename(), "automobile");

  // The order file restricted to the extracted files; indices renumbered in original order.
  const auto lines = read_lines(data + "/cifar10n-labels.csv");
  ASSERT_EQ(lines.size(), 50001u);
  std::vector<std::vector<std::string>> rows;
  for (size_t l = 1; l < lines.size(); ++l) {
    auto f = split_csv_line(lines[l]);
    if (fs::exists(dir.path() + "/" + f[1])) rows.push_back(std::move(f));
  }
  ASSERT_EQ(static_cast<int64_t>(rows.size()), 10 * per_class_train);
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return std::stoll(a[0]) < std::stoll(b[0]); });
  std::string csv_text = lines[0] + "\n";
  for (size_t r = 0; r < rows.size(); ++r) csv_text += std::to_string(r) + "," + rows[r][1] + "," + rows[r][2] + ",0,0,0\n";
  const std::string csv = dir.path() + "/order.csv";
  tu::write_file(csv, csv_text);

  auto train = cifar10_jpeg_folder(dir.path(), true, csv);
  ASSERT_EQ(train->size(), 10 * per_class_train);
  // Index i must be the i-th extracted image in CIFAR's original order, with its clean label.
  for (size_t r = 0; r < rows.size(); ++r) {
    ASSERT_EQ(train->label(static_cast<int64_t>(r)), std::stoll(rows[r][2])) << rows[r][1];
    ASSERT_TRUE(train->path(static_cast<int64_t>(r)).ends_with(rows[r][1])) << train->path(r) << " vs " << rows[r][1];
  }
  const RawSample s = train->load(0);  // original index 0 is train/frog/0000.jpg
  EXPECT_TRUE(s.source.ends_with("train/frog/0000.jpg"));
  EXPECT_EQ(s.label, 6);
  const Decoded d = decode_image(s.encoded.data(), s.encoded.size(), {}, s.source);
  EXPECT_EQ(d.image.height, 32);
  EXPECT_EQ(d.image.width, 32);
  // Without the order file: class-major order.
  auto class_major = cifar10_jpeg_folder(dir.path(), true);
  EXPECT_TRUE(class_major->path(per_class_train).ends_with("automobile/0000.jpg"));
}
