#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "data/label_noise.h"
#include "data/numpy_mt19937.h"
#include "data/synthetic.h"
#include "data_test_util.h"
#include "engine/error.h"

using namespace dp::data;

TEST(NumpyMT19937, FirstDrawsMatchNumpy) {
  // numpy 1.24: np.random.RandomState(1).randint(0, 2**32, dtype=np.uint64, size=3)
  NumpyLegacyMT19937 rng(1);
  EXPECT_EQ(rng.next_u32(), 1791095845u);
  EXPECT_EQ(rng.next_u32(), 4282876139u);
  EXPECT_EQ(rng.next_u32(), 3093770124u);
}

TEST(NumpyPermutation, SpecVectors) {
  // docs/method.md §4: np.random.seed(1); np.random.permutation(n)
  const std::vector<int64_t> p40 = {11456, 16528, 3253, 18614, 1544, 12568, 15497, 13987, 9598, 6668};
  const std::vector<int64_t> p20 = {9953, 3850, 4962, 3886, 5437};
  const std::vector<int64_t> p80 = {3841, 12898, 15032, 36781, 9201};
  auto perm = numpy_legacy_permutation(1, 20000);
  EXPECT_EQ(std::vector<int64_t>(perm.begin(), perm.begin() + 10), p40);
  perm = numpy_legacy_permutation(1, 10000);
  EXPECT_EQ(std::vector<int64_t>(perm.begin(), perm.begin() + 5), p20);
  perm = numpy_legacy_permutation(1, 40000);
  EXPECT_EQ(std::vector<int64_t>(perm.begin(), perm.begin() + 5), p80);
  std::sort(perm.begin(), perm.end());
  for (int64_t i = 0; i < 40000; ++i) ASSERT_EQ(perm[i], i);
}

TEST(NumpyPermutation, EdgeSizes) {
  EXPECT_TRUE(numpy_legacy_permutation(1, 0).empty());
  EXPECT_EQ(numpy_legacy_permutation(7, 1), std::vector<int64_t>{0});
}

static std::vector<int64_t> balanced_labels(int64_t n, int64_t classes) {
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) labels[i] = (i * 7919) % classes;
  return labels;
}

TEST(ImagePermutationNoise, ReferenceProtocol) {
  const auto labels = balanced_labels(50000, 100);
  const NoiseMap map = image_permutation_noise(labels, 0.4, 1);
  const auto perm = numpy_legacy_permutation(1, 20000);
  ASSERT_EQ(map.size(), 50000);
  EXPECT_EQ(map.num_corrupted(), 20000);
  for (int64_t i = 0; i < 50000; ++i) {
    EXPECT_EQ(map.label[i], labels[i]);  // each sample keeps its own label
    if (i < 20000) {
      ASSERT_EQ(map.image_source[i], perm[i]);
      ASSERT_EQ(map.original_label[i], labels[perm[i]]);
      ASSERT_EQ(map.is_corrupted[i], 1);
    } else {
      ASSERT_EQ(map.image_source[i], i);
      ASSERT_EQ(map.is_corrupted[i], 0);
    }
  }
  // ~1% of the permuted samples keep a matching class with 100 balanced classes.
  const double unchanged = 1.0 - static_cast<double>(map.num_label_changed()) / 20000.0;
  EXPECT_NEAR(unchanged, 0.01, 0.005);
}

TEST(SymmetricNoise, ExactRateAndUniformity) {
  const auto labels = balanced_labels(20000, 10);
  const NoiseMap other = symmetric_label_noise(labels, 10, 0.4, true, 5);
  EXPECT_EQ(other.num_corrupted(), 8000);
  EXPECT_EQ(other.num_label_changed(), 8000);  // over the other classes: every chosen label changes
  const NoiseMap all = symmetric_label_noise(labels, 10, 0.4, false, 5);
  EXPECT_EQ(all.num_corrupted(), 8000);
  // Over all classes, 1/10 of the chosen keep their label: 7200 changes expected (sd ~27).
  EXPECT_NEAR(static_cast<double>(all.num_label_changed()), 7200.0, 150.0);
  std::vector<int64_t> counts(10, 0);
  for (int64_t i = 0; i < 20000; ++i)
    if (all.is_corrupted[i]) ++counts[all.label[i]];
  for (int64_t c : counts) EXPECT_NEAR(static_cast<double>(c), 800.0, 120.0);
  // Deterministic in the seed.
  EXPECT_EQ(symmetric_label_noise(labels, 10, 0.4, true, 5).label, other.label);
  EXPECT_NE(symmetric_label_noise(labels, 10, 0.4, true, 6).label, other.label);
}

TEST(FileNoise, ColumnByNameAndIndexColumn) {
  tu::TempDir dir;
  const std::string csv = dir.path() + "/labels.csv";
  tu::write_file(csv, "orig_index,path,clean_label,worse_label\n2,c,1,1\n0,a,0,3\n1,b,2,2\n");
  const NoiseMap map = file_label_noise({0, 2, 1}, csv, "worse_label", "orig_index", 10);
  EXPECT_EQ(map.label, (std::vector<int64_t>{3, 2, 1}));
  EXPECT_EQ(map.is_corrupted, (std::vector<uint8_t>{1, 0, 0}));
  EXPECT_THROW(file_label_noise({0, 2, 1}, csv, "no_such_column", "orig_index", 10), dp::Error);
  EXPECT_THROW(file_label_noise({0, 2, 1, 4}, csv, "worse_label", "orig_index", 10), dp::Error);
}

TEST(FileNoise, Cifar10NHumanLabels) {
  const std::string data = tu::shared_data_dir();
  if (data.empty()) GTEST_SKIP() << "../shared/data is absent: CIFAR-10N test skipped";
  const std::string csv = data + "/cifar10n-labels.csv";
  // Clean labels from the file itself, then the published noise rates.
  const NoiseMap clean_map = file_label_noise(std::vector<int64_t>(50000, 0), csv, "clean_label", "orig_index", 10);
  const NoiseMap worse = file_label_noise(clean_map.label, csv, "worse_label", "orig_index", 10);
  EXPECT_NEAR(static_cast<double>(worse.num_corrupted()) / 50000.0, 0.402, 0.002);
  const NoiseMap random1 = file_label_noise(clean_map.label, csv, "random_label1", "orig_index", 10);
  EXPECT_NEAR(static_cast<double>(random1.num_corrupted()) / 50000.0, 0.172, 0.002);
}

TEST(NoisyDataset, ShowsPermutedImagesUnderOwnIndex) {
  SyntheticOptions options;
  options.size = 100;
  auto base = std::make_shared<SyntheticDataset>(options);
  const auto labels = dataset_labels(*base);
  NoisyDataset noisy(base, image_permutation_noise(labels, 0.5, 1));
  const auto& map = noisy.noise_map();
  for (int64_t i = 0; i < 100; ++i) {
    const RawSample s = noisy.load(i);
    EXPECT_EQ(s.index, i);
    EXPECT_EQ(s.label, labels[i]);
    EXPECT_EQ(s.image.pixels, base->load(map.image_source[i]).image.pixels);
  }
}

// Issue 13: labels out of range were caught only at the first loss step, without the file's
// line; 1e300 was converted to an integer (undefined behaviour); a 50 MB field was echoed whole.
TEST(FileNoise, BadLabelsAreErrorsNamingFileLineAndValue) {
  tu::TempDir dir;
  const std::string csv = dir.path() + "/labels.csv";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"1000", "label 1000"}, {"-3", "label -3"}, {"10", "label 10"},
      {"1e300", "'1e300' is not an integer"}, {"inf", "'inf'"}, {"nan", "'nan'"}, {"2.5", "'2.5'"},
      {std::string(1000000, '7'), "..."}};
  for (const auto& [value, expected] : cases) {
    tu::write_file(csv, "label\n1\n" + value + "\n0\n");
    try {
      file_label_noise({0, 1, 2}, csv, "label", "", 10);
      ADD_FAILURE() << value.substr(0, 20) << " accepted";
    } catch (const dp::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(csv), std::string::npos) << what.substr(0, 300);
      EXPECT_NE(what.find("line 3"), std::string::npos) << what.substr(0, 300);
      EXPECT_NE(what.find(expected), std::string::npos) << what.substr(0, 300);
      EXPECT_LT(what.size(), 1000u) << "the value is echoed whole";
    }
  }
}

// Issue 13: a directory given as a label file (or a CIFAR batch) asked for an absurd allocation
// (std::bad_alloc from data/file_io.cpp).
TEST(FileNoise, ADirectoryIsRefusedNamingIt) {
  tu::TempDir dir;
  try {
    file_label_noise({0, 1, 2}, dir.path(), "label", "", 10);
    ADD_FAILURE() << "a directory was read as a label file";
  } catch (const dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path() + "' is a directory"), std::string::npos) << e.what();
  }
}
