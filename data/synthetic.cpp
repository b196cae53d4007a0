#include "data/synthetic.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "data/sample_rng.h"
#include "engine/error.h"

namespace dp::data {

SyntheticDataset::SyntheticDataset(SyntheticOptions options) : options_(options) {
  DP_CHECK(options_.size > 0 && options_.num_classes > 0 && options_.height > 0 &&
               options_.width > 0,
           "synthetic dataset needs positive size, classes, height and width",
           "check the synthetic dataset options");
}

int64_t SyntheticDataset::label(int64_t index) const {
  check_index(*this, index, "synthetic");
  return index % options_.num_classes;
}

RawSample SyntheticDataset::load(int64_t index) const {
  check_index(*this, index, "synthetic");
  const int64_t cls = label(index);
  // Class parameters come from the seed and the class only, so every sample of a class shares them.
  SampleRng class_rng(options_.seed, RngStream::kSynthetic, 1, static_cast<uint64_t>(cls));
  const double angle = std::numbers::pi * (static_cast<double>(cls) + 0.5 * class_rng.uniform()) /
                       static_cast<double>(options_.num_classes);
  const double frequency = 1.5 + 3.0 * class_rng.uniform();  // cycles per image
  double colour[3];
  for (double& c : colour) c = 0.3 + 0.7 * class_rng.uniform();

  // Purpose slot 1 is taken by the class parameters above: splits use 0, 2, 3, ...
  const uint64_t split_slot = options_.split == 0 ? 0 : options_.split + 1;
  SampleRng rng(options_.seed, RngStream::kSynthetic, split_slot, static_cast<uint64_t>(index));
  const double phase = 2.0 * std::numbers::pi * rng.uniform();
  const double contrast = 60.0 + 40.0 * rng.uniform();
  const double fx = std::cos(angle) * frequency / static_cast<double>(options_.width);
  const double fy = std::sin(angle) * frequency / static_cast<double>(options_.height);

  RawSample sample;
  sample.index = index;
  sample.label = cls;
  sample.image = Image(options_.height, options_.width, 3);
  uint8_t* out = sample.image.pixels.data();
  for (int64_t y = 0; y < options_.height; ++y) {
    for (int64_t x = 0; x < options_.width; ++x) {
      const double wave =
          std::sin(2.0 * std::numbers::pi * (fx * static_cast<double>(x) + fy * static_cast<double>(y)) + phase);
      for (int c = 0; c < 3; ++c) {
        // Box-Muller-free noise: the sum of two uniforms is triangular, cheap and good enough.
        const double noise = (rng.uniform() + rng.uniform() - 1.0) * 2.45 * options_.noise * 255.0;
        const double value = 128.0 + contrast * colour[c] * wave + noise;
        *out++ = static_cast<uint8_t>(std::clamp(std::lround(value), 0L, 255L));
      }
    }
  }
  sample.source = source(index);
  return sample;
}

SampleIdentity SyntheticDataset::identity(int64_t index) const {
  // Generated data is its parameters: the same options draw the same pixels.
  const SyntheticOptions& o = options_;
  const std::string parameters = fmt::format("{} {} {}x{} seed {} split {} noise {:a}", o.size, o.num_classes, o.height,
                                             o.width, o.seed, o.split, o.noise);
  return {"synthetic sample " + std::to_string(index),
          crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(parameters.data()), static_cast<uInt>(parameters.size()))};
}

std::string SyntheticDataset::source(int64_t index) const {
  return "synthetic sample " + std::to_string(index) + " (seed " + std::to_string(options_.seed) +
         ", split " + std::to_string(options_.split) + ")";
}

namespace {

// The synthetic images are centred on mid-grey with moderate contrast.
TransformSpec synthetic_transform(bool train, int64_t size) {
  TransformSpec t = train ? cifar_train_transform() : cifar_test_transform();
  t.height = t.width = size;
  if (!train) t.geometry = Geometry::kNone;
  t.mean = {0.5f, 0.5f, 0.5f};
  t.std = {0.25f, 0.25f, 0.25f};
  return t;
}

}  // namespace

DatasetKind synthetic_kind() {
  DatasetKind k;
  k.name = "synthetic";
  k.identity = "generator parameters (data.synthetic_noise, data.image_size, run.seed)";
  k.summary = "procedural images, no files (data.synthetic_train_size, synthetic_test_size, synthetic_noise)";
  k.reads_files = false;
  k.make = [](const DatasetRequest& r) {
    SyntheticOptions o;
    o.noise = r.synthetic_noise;
    o.size = r.synthetic_size;
    o.num_classes = r.num_classes > 0 ? r.num_classes : 10;
    o.height = o.width = r.image_size;
    o.seed = r.seed;
    o.split = r.train ? 0 : 1;  // same classes, other samples
    return DatasetSplit{std::make_shared<SyntheticDataset>(o), synthetic_transform(r.train, r.image_size)};
  };
  k.class_names = [](const DatasetRequest&) { return std::vector<std::string>{}; };
  return k;
}

}  // namespace dp::data
