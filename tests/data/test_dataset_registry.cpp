// The dataset registry (data/registry.h): every kind builds both splits from a small fixture,
// with transforms and class names, and names data.path when its folder is missing. A new kind
// fails EveryKindBuildsFromItsFixture until it has a fixture here.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/image_folder.h"
#include "data/packed.h"
#include "data/registry.h"
#include "data_test_util.h"
#include "engine/error.h"

using namespace dp::data;
namespace fs = std::filesystem;

namespace {

void write_jpeg(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  const std::vector<unsigned char> jpeg = tu::make_jpeg(6, 5);
  tu::write_file(path, std::string(jpeg.begin(), jpeg.end()));
}

// `records` CIFAR records of zero pixels, labels 0, 1, ... (two label bytes for CIFAR-100).
void write_cifar_records(const std::string& path, int64_t records, int64_t label_bytes) {
  std::string bytes;
  for (int64_t r = 0; r < records; ++r) {
    bytes += std::string(static_cast<size_t>(label_bytes), static_cast<char>(r));
    bytes += std::string(3072, '\0');
  }
  tu::write_file(path, bytes);
}

void write_image_folder(const std::string& dir) {
  for (const char* split : {"train", "val"})
    for (const char* cls : {"cat", "dog"}) write_jpeg(dir + "/" + split + "/" + cls + "/a.jpg");
}

struct Fixture {
  std::function<void(const std::string& dir)> write;  // into an empty folder (nothing: no files)
  std::vector<std::string> class_names;               // what the kind reports for it
};

// One fixture per registered kind.
const std::map<std::string, Fixture>& fixtures() {
  static const std::map<std::string, Fixture> f = {
      {"synthetic", {[](const std::string&) {}, {}}},
      {"cifar10",
       {[](const std::string& dir) {
          for (int b = 1; b <= 5; ++b) write_cifar_records(dir + "/data_batch_" + std::to_string(b) + ".bin", 2, 1);
          write_cifar_records(dir + "/test_batch.bin", 3, 1);
        },
        cifar10_class_names()}},
      {"cifar100",
       {[](const std::string& dir) {
          write_cifar_records(dir + "/train.bin", 4, 2);
          write_cifar_records(dir + "/test.bin", 2, 2);
          std::string names;
          for (int c = 0; c < 100; ++c) names += "class" + std::to_string(c) + "\n";
          tu::write_file(dir + "/fine_label_names.txt", names);
        },
        [] {
          std::vector<std::string> n;
          for (int c = 0; c < 100; ++c) n.push_back("class" + std::to_string(c));
          return n;
        }()}},
      {"cifar10-jpeg",
       {[](const std::string& dir) {
          for (const char* split : {"train", "test"})
            for (const std::string& cls : cifar10_class_names()) write_jpeg(dir + "/" + split + "/" + cls + "/0000.jpg");
        },
        cifar10_class_names()}},
      {"imagefolder", {write_image_folder, {"cat", "dog"}}},
  };
  return f;
}

// Packs the image-folder fixture into `dir` (both packed kinds read the same folder).
void write_pack(const std::string& dir) {
  tu::TempDir source;
  write_image_folder(source.path());
  for (auto [split, folder] : {std::pair{"train", "train"}, std::pair{"test", "val"}}) {
    ImageFolderOptions o;
    o.root = source.path() + "/" + folder;
    ImageFolderDataset ds(o);
    write_packed_split(ds, ds.classes(), dir, split, {});
  }
}

const Fixture* fixture_for(const std::string& kind) {
  static const Fixture packed{write_pack, {"cat", "dog"}};
  if (kind == "packed" || kind == "packed-imagenet") return &packed;
  auto it = fixtures().find(kind);
  return it == fixtures().end() ? nullptr : &it->second;
}

DatasetRequest request(const std::string& path, bool train) {
  DatasetRequest r;
  r.path = path;
  r.train = train;
  r.image_size = 24;
  r.synthetic_size = 12;
  return r;
}

TEST(DatasetRegistry, KindsHaveUniqueNamesAndSayWhatTheyAre) {
  std::set<std::string> seen;
  for (const DatasetKind& k : dataset_kinds()) {
    EXPECT_TRUE(seen.insert(k.name).second) << k.name << " is registered twice";
    EXPECT_FALSE(k.summary.empty()) << k.name;
    EXPECT_NE(k.identity, "contents") << k.name << ": say what its Dataset::identity() hashes (DatasetKind::identity)";
    EXPECT_TRUE(k.make && k.class_names) << k.name;
  }
  EXPECT_EQ(dataset_kind_names().size(), dataset_kinds().size());
}

TEST(DatasetRegistry, AnUnknownKindListsTheKnownOnes) {
  try {
    dataset_kind("cifar11");
    FAIL() << "an unknown kind was accepted";
  } catch (const dp::Error& e) {
    EXPECT_NE(e.message().find("cifar11"), std::string::npos) << e.what();
    for (const std::string& name : dataset_kind_names()) EXPECT_NE(e.hint().find(name), std::string::npos) << name;
  }
}

TEST(DatasetRegistry, EveryKindBuildsFromItsFixture) {
  for (const DatasetKind& kind : dataset_kinds()) {
    SCOPED_TRACE(kind.name);
    const Fixture* fixture = fixture_for(kind.name);
    ASSERT_NE(fixture, nullptr) << "dataset kind " << kind.name
                                << " has no fixture: add one to tests/data/test_dataset_registry.cpp";
    tu::TempDir dir;
    fixture->write(dir.path());
    for (bool train : {true, false}) {
      SCOPED_TRACE(train ? "train" : "test");
      const DatasetSplit split = make_dataset_split(kind.name, request(dir.path(), train));
      ASSERT_NE(split.dataset, nullptr);
      EXPECT_GT(split.dataset->size(), 0);
      EXPECT_GT(split.transform.height, 0);
      EXPECT_NO_THROW(split.dataset->load(0));
      const std::vector<std::string> names = dataset_class_names(kind.name, request(dir.path(), train));
      EXPECT_EQ(names, fixture->class_names);
      if (!names.empty()) {
        EXPECT_EQ(static_cast<int64_t>(names.size()), split.dataset->num_classes());
      }
    }
    if (!kind.reads_files) continue;
    try {
      make_dataset_split(kind.name, request(dir.path() + "/missing", true));
      FAIL() << "a missing folder was accepted";
    } catch (const dp::Error& e) {
      EXPECT_NE(e.message().find("data.path"), std::string::npos) << e.what();
    }
    const std::vector<std::string> without_files = dataset_class_names(kind.name, request(dir.path() + "/missing", false));
    EXPECT_TRUE(without_files.empty() || without_files == fixture->class_names)
        << "class names without the files: the kind's fixed ones, or none";
  }
}

}  // namespace
