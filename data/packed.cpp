#include "data/packed.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <unordered_map>

#include "data/file_io.h"
#include "engine/error.h"

namespace dp::data {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kColumns = {"index", "offset", "length", "crc32", "label", "orig_index", "source"};
constexpr const char* kRepack = "re-create the pack with dp-pack (or re-copy it: it may be truncated)";

uint32_t crc32_of(const uint8_t* data, uint64_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (size > 0) {  // zlib takes uInt lengths
    const auto chunk = static_cast<uInt>(std::min<uint64_t>(size, 1u << 30));
    crc = crc32(crc, data, chunk);
    data += chunk;
    size -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

template <typename T>
bool parse_number(const std::string& text, T& value, int base = 10) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value, base);
  return ec == std::errc() && ptr == end && !text.empty();
}

std::string split_dir_file(const std::string& dir, const std::string& split, const char* ext) {
  return (fs::path(dir) / (split + ext)).string();
}

}  // namespace

PackedDataset::PackedDataset(const std::string& dir, const std::string& split)
    : images_path_(split_dir_file(dir, split, ".jpgs")), index_path_(split_dir_file(dir, split, ".csv")) {
  const std::string classes_path = (fs::path(dir) / "classes.txt").string();
  DP_CHECK(fs::is_directory(dir), "packed dataset folder '" + dir + "' does not exist",
           "pass the folder dp-pack wrote (it holds classes.txt, train.jpgs/.csv, test.jpgs/.csv)");
  for (const auto& p : {classes_path, index_path_, images_path_})
    DP_CHECK(fs::is_regular_file(p), "packed dataset '" + dir + "' has no " + fs::path(p).filename().string(),
             "pass the folder dp-pack wrote, or re-create it with dp-pack");
  for (const auto& line : read_lines(classes_path))
    if (!line.empty()) classes_.push_back(line);
  DP_CHECK(!classes_.empty(), "'" + classes_path + "' lists no classes", kRepack);

  const auto lines = read_lines(index_path_);
  DP_CHECK(!lines.empty(), "packed index '" + index_path_ + "' is empty", kRepack);
  const auto header = split_csv_line(lines[0]);
  DP_CHECK(header.size() >= kColumns.size() && std::equal(kColumns.begin(), kColumns.end(), header.begin()),
           "packed index '" + index_path_ + "' does not start with the columns " + fmt::format("{}", fmt::join(kColumns, ",")),
           "it is not a dp-pack index: " + std::string(kRepack));

  uint64_t expected_offset = 0;
  for (size_t l = 1; l < lines.size(); ++l) {
    if (lines[l].empty()) continue;
    const auto f = split_csv_line(lines[l]);
    auto bad = [&](const std::string& why) {
      DP_THROW(fmt::format("packed index '{}' line {}: {}", index_path_, l + 1, why), kRepack);
    };
    if (f.size() < kColumns.size()) bad("too few fields");
    Entry e;
    int64_t index = 0;
    if (!parse_number(f[0], index) || index != static_cast<int64_t>(entries_.size()))
      bad(fmt::format("index '{}' where {} was expected (rows must be in index order)", f[0], entries_.size()));
    if (!parse_number(f[1], e.offset) || !parse_number(f[2], e.length) || !parse_number(f[3], e.crc32, 16))
      bad("offset, length or crc32 is not a number");
    if (e.offset != expected_offset)
      bad(fmt::format("offset {} where {} was expected (ranges must be contiguous)", e.offset, expected_offset));
    if (!parse_number(f[4], e.label) || e.label < 0 || e.label >= num_classes())
      bad(fmt::format("label '{}' is not in [0, {})", f[4], num_classes()));
    if (!parse_number(f[5], e.orig_index)) bad("orig_index is not a number");
    e.source = f[6];
    expected_offset += e.length;
    entries_.push_back(std::move(e));
  }
  DP_CHECK(!entries_.empty(), "packed index '" + index_path_ + "' lists no images", kRepack);

  const int fd = ::open(images_path_.c_str(), O_RDONLY | O_CLOEXEC);
  DP_CHECK(fd >= 0, "cannot open '" + images_path_ + "'", "check its permissions");
  struct stat st {};
  ::fstat(fd, &st);
  mapped_size_ = static_cast<uint64_t>(st.st_size);
  if (mapped_size_ != expected_offset) {
    ::close(fd);
    DP_THROW(fmt::format("pack file '{}' is {} bytes but its index '{}' needs {}", images_path_, mapped_size_,
                         index_path_, expected_offset),
             mapped_size_ < expected_offset ? "the file is truncated: " + std::string(kRepack)
                                            : "the file does not belong to this index: " + std::string(kRepack));
  }
  void* p = ::mmap(nullptr, mapped_size_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  DP_CHECK(p != MAP_FAILED, "cannot map '" + images_path_ + "' into memory", "is the file on a mappable file system?");
  mapped_ = static_cast<const uint8_t*>(p);
}

PackedDataset::~PackedDataset() {
  if (mapped_) ::munmap(const_cast<uint8_t*>(mapped_), mapped_size_);
}

int64_t PackedDataset::label(int64_t index) const {
  check_index(*this, index, "packed dataset");
  return entries_[static_cast<size_t>(index)].label;
}

int64_t PackedDataset::orig_index(int64_t index) const {
  check_index(*this, index, "packed dataset");
  return entries_[static_cast<size_t>(index)].orig_index;
}

std::string PackedDataset::source(int64_t index) const {
  check_index(*this, index, "packed dataset");
  return fmt::format("{}[{}] ({})", images_path_, index, entries_[static_cast<size_t>(index)].source);
}

SampleIdentity PackedDataset::identity(int64_t index) const {
  check_index(*this, index, "packed dataset");
  const Entry& e = entries_[static_cast<size_t>(index)];
  return {e.source, (e.length << 32) ^ e.crc32};
}

RawSample PackedDataset::load(int64_t index) const {
  check_index(*this, index, "packed dataset");
  const Entry& e = entries_[static_cast<size_t>(index)];
  RawSample s;
  s.index = index;
  s.label = e.label;
  s.source = source(index);
  s.encoded.assign(mapped_ + e.offset, mapped_ + e.offset + e.length);
  const uint32_t crc = crc32_of(s.encoded.data(), e.length);
  DP_CHECK(crc == e.crc32,
           fmt::format("pack file '{}' is corrupt at image {} ({}): CRC-32 {:08x}, the index says {:08x}",
                       images_path_, index, e.source, crc, e.crc32),
           kRepack);
  return s;
}

PackReport write_packed_split(const Dataset& source, const std::vector<std::string>& class_names,
                              const std::string& dir, const std::string& split, const PackOptions& options) {
  DP_CHECK(static_cast<int64_t>(class_names.size()) == source.num_classes(),
           fmt::format("{} class names for a dataset of {} classes", class_names.size(), source.num_classes()),
           "pass the class list of the source dataset");
  fs::create_directories(dir);

  // Extra label columns, keyed by the source index.
  std::unordered_map<int64_t, std::string> extra;
  if (!options.label_columns.empty()) {
    DP_CHECK(!options.labels_csv.empty(), "label columns to copy but no labels CSV", "pass the CSV that has them");
    const auto lines = read_lines(options.labels_csv);
    DP_CHECK(!lines.empty(), "labels CSV '" + options.labels_csv + "' is empty", "it needs a header row");
    const auto header = split_csv_line(lines[0]);
    auto col = [&](const std::string& name) {
      auto it = std::find(header.begin(), header.end(), name);
      DP_CHECK(it != header.end(), "labels CSV '" + options.labels_csv + "' has no column '" + name + "'",
               "its columns are: " + fmt::format("{}", fmt::join(header, ",")));
      return static_cast<size_t>(it - header.begin());
    };
    const size_t key = col(options.key_column);
    std::vector<size_t> cols;
    for (const auto& c : options.label_columns) cols.push_back(col(c));
    for (size_t l = 1; l < lines.size(); ++l) {
      if (lines[l].empty()) continue;
      const auto f = split_csv_line(lines[l]);
      int64_t k = 0;
      DP_CHECK(f.size() == header.size() && parse_number(f[key], k),
               fmt::format("labels CSV '{}' line {} is malformed", options.labels_csv, l + 1), "fix the file");
      std::string values;
      for (size_t c : cols) values += "," + f[c];
      extra[k] = values;
    }
  }

  const std::string images_path = split_dir_file(dir, split, ".jpgs");
  const std::string index_path = split_dir_file(dir, split, ".csv");
  const std::string images_tmp = images_path + ".tmp", index_tmp = index_path + ".tmp";
  std::ofstream images(images_tmp, std::ios::binary | std::ios::trunc);
  std::ofstream index(index_tmp, std::ios::trunc);
  DP_CHECK(images && index, "cannot write into '" + dir + "'", "check that the folder is writable");
  index << fmt::format("{}", fmt::join(kColumns, ","));
  for (const auto& c : options.label_columns) index << "," << c;
  index << "\n";

  std::vector<int64_t> kept_per_class(class_names.size(), 0);
  PackReport report;
  for (int64_t i = 0; i < source.size(); ++i) {
    const int64_t label = source.label(i);
    if (options.per_class > 0 && kept_per_class[static_cast<size_t>(label)] >= options.per_class) continue;
    ++kept_per_class[static_cast<size_t>(label)];
    RawSample s = source.load(i);
    DP_CHECK(!s.encoded.empty(), "sample " + std::to_string(i) + " of the source has no encoded bytes",
             "pack file datasets (image folders), not in-memory ones");
    std::string name = s.source;
    if (!options.source_root.empty()) name = fs::path(name).lexically_relative(options.source_root).generic_string();
    DP_CHECK(name.find(',') == std::string::npos && name.find('\n') == std::string::npos,
             "source path '" + name + "' contains a comma or newline", "rename the file (the index is unquoted CSV)");
    std::string extra_values;
    if (!options.label_columns.empty()) {
      auto it = extra.find(i);
      DP_CHECK(it != extra.end(), fmt::format("labels CSV '{}' has no row for index {} ({})", options.labels_csv, i, name),
               "use the labels CSV of this dataset");
      extra_values = it->second;
    }
    index << fmt::format("{},{},{},{:08x},{},{},{}{}\n", report.images, report.bytes, s.encoded.size(),
                         crc32_of(s.encoded.data(), s.encoded.size()), label, i, name, extra_values);
    images.write(reinterpret_cast<const char*>(s.encoded.data()), static_cast<std::streamsize>(s.encoded.size()));
    report.bytes += s.encoded.size();
    ++report.images;
  }
  images.close();
  index.close();
  DP_CHECK(images && index, "writing the pack into '" + dir + "' failed", "is the disk full?");
  fs::rename(images_tmp, images_path);
  fs::rename(index_tmp, index_path);

  std::ofstream classes((fs::path(dir) / "classes.txt").string(), std::ios::trunc);
  for (const auto& c : class_names) classes << c << "\n";
  DP_CHECK(static_cast<bool>(classes), "cannot write classes.txt into '" + dir + "'", "check the folder");
  return report;
}

DatasetKind packed_kind(PackedTransforms transforms) {
  const bool cifar = transforms == PackedTransforms::kCifar;
  DatasetKind k;
  k.name = cifar ? "packed" : "packed-imagenet";
  k.identity = "image checksums in the pack's index";
  k.summary = cifar ? "a folder written by dp-pack in data.path, CIFAR transforms"
                    : "a folder written by dp-pack in data.path, ImageNet transforms";
  k.make = [cifar](const DatasetRequest& r) {
    require_dataset_dir(r.path);
    return DatasetSplit{std::make_shared<PackedDataset>(r.path, r.train ? "train" : "test"),
                        cifar ? (r.train ? cifar_train_transform() : cifar_test_transform())
                              : (r.train ? imagenet_train_transform(r.image_size)
                                         : imagenet_val_transform(r.image_size * 256 / 224, r.image_size))};
  };
  k.class_names = [](const DatasetRequest& r) { return class_names_file((fs::path(r.path) / "classes.txt").string()); };
  return k;
}

}  // namespace dp::data
