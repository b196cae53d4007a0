#include "data/label_noise.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "data/csv_table.h"
#include "data/file_io.h"
#include "data/numpy_mt19937.h"
#include "data/sample_rng.h"
#include "engine/error.h"

namespace dp::data {

int64_t NoiseMap::num_corrupted() const {
  return std::count(is_corrupted.begin(), is_corrupted.end(), uint8_t{1});
}

int64_t NoiseMap::num_label_changed() const {
  int64_t changed = 0;
  for (size_t i = 0; i < label.size(); ++i) changed += label[i] != original_label[i];
  return changed;
}

NoiseMap clean_noise_map(const std::vector<int64_t>& labels) {
  NoiseMap map;
  map.protocol = "none";
  map.label = labels;
  map.original_label = labels;
  map.is_corrupted.assign(labels.size(), 0);
  map.image_source.resize(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) map.image_source[i] = static_cast<int64_t>(i);
  return map;
}

static int64_t noisy_count(int64_t n, double fraction) {
  DP_CHECK(fraction >= 0.0 && fraction <= 1.0,
           "label-noise fraction " + std::to_string(fraction) + " is outside [0, 1]",
           "use e.g. 0.4 for 40% noise");
  // floor(N * fraction) as the reference computes it in double precision (int(50000 * 0.4)).
  return static_cast<int64_t>(std::floor(static_cast<double>(n) * fraction));
}

NoiseMap image_permutation_noise(const std::vector<int64_t>& labels, double fraction,
                                 uint32_t seed) {
  NoiseMap map = clean_noise_map(labels);
  map.protocol = "image_permutation";
  const int64_t n = noisy_count(static_cast<int64_t>(labels.size()), fraction);
  const std::vector<int64_t> perm = numpy_legacy_permutation(seed, n);
  for (int64_t i = 0; i < n; ++i) {
    map.image_source[i] = perm[i];
    map.original_label[i] = labels[perm[i]];
    map.is_corrupted[i] = 1;
  }
  return map;
}

NoiseMap symmetric_label_noise(const std::vector<int64_t>& labels, int64_t num_classes,
                               double fraction, bool exclude_true, uint64_t seed) {
  DP_CHECK(num_classes >= 2, "symmetric label noise needs at least 2 classes",
           "check the dataset's class count");
  NoiseMap map = clean_noise_map(labels);
  map.protocol = exclude_true ? "symmetric_other" : "symmetric_all";
  const auto total = static_cast<int64_t>(labels.size());
  const int64_t n = noisy_count(total, fraction);
  // Choose the noisy subset with a seeded Fisher-Yates shuffle: an exact count, not Bernoulli,
  // so the realised noise rate is the requested one.
  std::vector<int64_t> order(labels.size());
  for (int64_t i = 0; i < total; ++i) order[i] = i;
  SampleRng pick(seed, RngStream::kLabelNoise, 0, 0);
  for (int64_t i = total - 1; i >= 1; --i)
    std::swap(order[i], order[static_cast<int64_t>(pick.below(static_cast<uint64_t>(i) + 1))]);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = order[k];
    // Each sample's new label comes from its own stream: independent of the selection order.
    SampleRng draw(seed, RngStream::kLabelNoise, 1, static_cast<uint64_t>(i));
    int64_t new_label;
    if (exclude_true) {
      new_label = static_cast<int64_t>(draw.below(static_cast<uint64_t>(num_classes - 1)));
      if (new_label >= labels[i]) ++new_label;
    } else {
      new_label = static_cast<int64_t>(draw.below(static_cast<uint64_t>(num_classes)));
    }
    map.label[i] = new_label;
    map.is_corrupted[i] = 1;
  }
  return map;
}

static size_t column_of(const std::vector<std::string>& header, const std::string& name,
                        const std::string& path) {
  auto it = std::find(header.begin(), header.end(), name);
  if (it == header.end()) {
    std::string known;
    for (const auto& h : header) known += (known.empty() ? "" : ", ") + h;
    DP_THROW("label file '" + path + "' has no column '" + name + "'", "its columns are: " + known);
  }
  return static_cast<size_t>(it - header.begin());
}

// A field quoted in a message: long ones are cut (a 50 MB field is not echoed whole).
static std::string quoted(const std::string& text) {
  return "'" + (text.size() <= 40 ? text : text.substr(0, 40) + "...") + "'";
}

static int64_t parse_int(const std::string& text, const std::string& path, size_t line) {
  try {
    size_t used = 0;
    // Labels such as "6.0" appear in some exports: accept an integral float. Only magnitudes
    // a double holds exactly convert (1e300 or inf to an integer is undefined behaviour).
    const double value = std::stod(text, &used);
    if (used == text.size() && std::isfinite(value) && std::fabs(value) <= 9007199254740992.0 &&
        value == std::floor(value))
      return static_cast<int64_t>(value);
  } catch (const std::exception&) {
  }
  DP_THROW("label file '" + path + "' line " + std::to_string(line) + ": " + quoted(text) +
               " is not an integer",
           "fix or regenerate the file");
}

NoiseMap file_label_noise(const std::vector<int64_t>& labels, const std::string& csv_path,
                          const std::string& column, const std::string& index_column, int64_t num_classes) {
  const auto lines = read_lines(csv_path);
  DP_CHECK(!lines.empty(), "label file '" + csv_path + "' is empty", "it needs a header row");
  const auto header = split_csv_line(lines[0]);
  const size_t label_col = column_of(header, column, csv_path);
  const bool keyed = !index_column.empty();
  const size_t index_col = keyed ? column_of(header, index_column, csv_path) : 0;

  NoiseMap map = clean_noise_map(labels);
  map.protocol = "file:" + column;
  std::vector<uint8_t> seen(labels.size(), 0);
  int64_t row = 0;
  for (size_t l = 1; l < lines.size(); ++l) {
    if (lines[l].empty()) continue;
    const auto fields = split_csv_line(lines[l]);
    DP_CHECK(fields.size() == header.size(),
             "label file '" + csv_path + "' line " + std::to_string(l + 1) + " has " +
                 std::to_string(fields.size()) + " fields, the header has " +
                 std::to_string(header.size()),
             "fix or regenerate the file");
    const int64_t index = keyed ? parse_int(fields[index_col], csv_path, l + 1) : row;
    DP_CHECK(index >= 0 && index < static_cast<int64_t>(labels.size()) && !seen[index],
             "label file '" + csv_path + "' line " + std::to_string(l + 1) + ": sample index " +
                 std::to_string(index) + " is out of range or repeated",
             "the file must list each of the " + std::to_string(labels.size()) +
                 " samples exactly once");
    seen[index] = 1;
    map.label[index] = parse_int(fields[label_col], csv_path, l + 1);
    DP_CHECK(map.label[index] >= 0 && map.label[index] < num_classes,
             "label file '" + csv_path + "' line " + std::to_string(l + 1) + ": label " +
                 std::to_string(map.label[index]) + " (column " + column + ") is outside [0, " +
                 std::to_string(num_classes) + ")",
             "the dataset has " + std::to_string(num_classes) + " classes: fix the file or use its other column");
    map.is_corrupted[index] = map.label[index] != labels[index];
    ++row;
  }
  DP_CHECK(row == static_cast<int64_t>(labels.size()),
           "label file '" + csv_path + "' labels " + std::to_string(row) + " samples, the dataset has " +
               std::to_string(labels.size()),
           "use the label file that belongs to this dataset's training split");
  return map;
}

Relabelling apply_relabel_file(const NoiseMap& noisy, const std::string& csv_path, int64_t num_classes) {
  const CsvTable t = read_csv_table(csv_path);
  const size_t index_col = t.column("index"), label_col = t.column("label");
  const size_t suggested_col = t.column("suggested_label"), action_col = t.column("action");
  const int64_t n = noisy.size();
  const std::string regenerate = "write the relabel file with dp-inspect --relabel from a checkpoint of this run "
                                 "(same dataset, noise settings and seed)";
  Relabelling r;
  r.map = noisy;
  r.map.protocol = noisy.protocol + "+relabel_file";
  std::vector<uint8_t> seen(static_cast<size_t>(n), 0), drop(static_cast<size_t>(n), 0);
  for (size_t row = 0; row < t.rows.size(); ++row) {
    const auto& f = t.rows[row];
    const size_t line = row + 2;
    const int64_t i = parse_int(f[index_col], csv_path, line);
    DP_CHECK(i >= 0 && i < n && !seen[static_cast<size_t>(i)],
             fmt::format("{}: sample index {} is out of range or repeated", t.where(row), i),
             fmt::format("the file must list each of the {} training samples exactly once; {}", n, regenerate));
    seen[static_cast<size_t>(i)] = 1;
    const int64_t given = parse_int(f[label_col], csv_path, line);
    DP_CHECK(given == noisy.label[static_cast<size_t>(i)],
             fmt::format("{}: sample {} has label {} there, but this run trains it with label {}", t.where(row), i,
                         given, noisy.label[static_cast<size_t>(i)]),
             "the file belongs to another run: " + regenerate);
    const std::string& action = f[action_col];
    if (action == "keep") continue;
    if (action == "drop") {
      drop[static_cast<size_t>(i)] = 1;
      ++r.dropped;
      continue;
    }
    DP_CHECK(action == "relabel",
             fmt::format("{}: action '{}' is not keep, relabel or drop", t.where(row), action),
             "edit the action column: keep (train with the given label), relabel (train with suggested_label) "
             "or drop (leave the sample out)");
    const int64_t suggested = parse_int(f[suggested_col], csv_path, line);
    DP_CHECK(suggested >= 0 && suggested < num_classes,
             fmt::format("{}: suggested_label {} is outside [0, {})", t.where(row), suggested, num_classes),
             fmt::format("the dataset has {} classes: fix the suggested label or the action", num_classes));
    r.map.label[static_cast<size_t>(i)] = suggested;
    ++r.relabelled;
  }
  DP_CHECK(static_cast<int64_t>(t.rows.size()) == n,
           fmt::format("'{}' lists {} samples, this run's training set has {}", csv_path, t.rows.size(), n),
           regenerate);
  for (int64_t i = 0; i < n; ++i)
    if (!drop[static_cast<size_t>(i)]) r.kept.push_back(i);
  DP_CHECK(!r.kept.empty(), fmt::format("'{}' drops every training sample", csv_path),
           "keep or relabel some samples (action column)");
  return r;
}

NoiseMap kept_noise_map(const NoiseMap& map, const std::vector<int64_t>& kept) {
  NoiseMap k;
  k.protocol = map.protocol;
  for (int64_t i : kept) {
    DP_CHECK(i >= 0 && i < map.size(), fmt::format("kept_noise_map: sample {} of {}", i, map.size()),
             "pass indices of the noise map's samples");
    k.label.push_back(map.label[static_cast<size_t>(i)]);
    k.original_label.push_back(map.original_label[static_cast<size_t>(i)]);
    k.is_corrupted.push_back(map.is_corrupted[static_cast<size_t>(i)]);
    k.image_source.push_back(static_cast<int64_t>(k.image_source.size()));
  }
  return k;
}

std::vector<int64_t> dataset_labels(const Dataset& dataset) {
  std::vector<int64_t> labels(static_cast<size_t>(dataset.size()));
  for (int64_t i = 0; i < dataset.size(); ++i) labels[i] = dataset.label(i);
  return labels;
}

NoisyDataset::NoisyDataset(std::shared_ptr<const Dataset> base, NoiseMap map)
    : base_(std::move(base)), map_(std::move(map)) {
  DP_CHECK(map_.size() == base_->size(),
           "noise map covers " + std::to_string(map_.size()) + " samples, the dataset has " +
               std::to_string(base_->size()),
           "build the noise map from this dataset's labels");
}

int64_t NoisyDataset::label(int64_t index) const {
  check_index(*this, index, "noisy dataset");
  return map_.label[index];
}

RawSample NoisyDataset::load(int64_t index) const {
  check_index(*this, index, "noisy dataset");
  RawSample sample = base_->load(map_.image_source[index]);
  sample.index = index;
  sample.label = map_.label[index];
  return sample;
}

std::string NoisyDataset::source(int64_t index) const {
  check_index(*this, index, "noisy dataset");
  return base_->source(map_.image_source[index]);
}

SampleIdentity NoisyDataset::identity(int64_t index) const {
  check_index(*this, index, "noisy dataset");
  return base_->identity(map_.image_source[index]);
}

}  // namespace dp::data
