#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "data/image_ops.h"
#include "data/sample_rng.h"
#include "data/transforms.h"
#include "data_test_util.h"

using namespace dp::data;

TEST(TransformGeometry, TorchvisionSizesAndRounding) {
  EXPECT_EQ(resize_shorter_side(375, 500, 256), (std::array<int64_t, 2>{256, 341}));  // int(341.33)
  EXPECT_EQ(resize_shorter_side(500, 375, 256), (std::array<int64_t, 2>{341, 256}));
  EXPECT_EQ(resize_shorter_side(300, 300, 256), (std::array<int64_t, 2>{256, 256}));
  // round((h - th) / 2.0) with Python's half-to-even: (257-224)/2 = 16.5 -> 16, (259-224)/2 = 17.5 -> 18
  EXPECT_EQ(center_crop_box(257, 259, 224, 224).top, 16);
  EXPECT_EQ(center_crop_box(257, 259, 224, 224).left, 18);
  EXPECT_EQ(center_crop_box(20, 20, 24, 24).top, -2);  // larger crop: zero padded
}

TEST(RandomResizedCrop, MatchesTorchvisionStatistics) {
  // torchvision's get_params on 300x400 over 20000 draws (scripts/make_data_goldens.py):
  // mean area fraction 0.4351, mean log(w/h) 0.0314.
  double area = 0, log_ratio = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    SampleRng rng(1, RngStream::kAugment, 0, static_cast<uint64_t>(i));
    const CropBox b = random_resized_crop_box(300, 400, {0.08, 1.0}, {3.0 / 4.0, 4.0 / 3.0}, rng);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_LE(b.top + b.height, 300);
    ASSERT_LE(b.left + b.width, 400);
    const double frac = static_cast<double>(b.height * b.width) / (300.0 * 400.0);
    area += frac / n;
    log_ratio += std::log(static_cast<double>(b.width) / static_cast<double>(b.height)) / n;
  }
  EXPECT_NEAR(area, 0.4351, 0.01);
  EXPECT_NEAR(log_ratio, 0.0314, 0.01);
}

TEST(RandomResizedCrop, FallbackIsCentredAndClamped) {
  // A 10x1000 strip: no attempt can fit, so the fallback crops the widest 4/3 box in the centre.
  SampleRng rng(1, RngStream::kAugment, 0, 0);
  const CropBox b = random_resized_crop_box(10, 1000, {0.08, 1.0}, {3.0 / 4.0, 4.0 / 3.0}, rng);
  EXPECT_EQ(b.height, 10);
  EXPECT_EQ(b.width, 13);  // round(10 * 4/3)
  EXPECT_EQ(b.left, (1000 - 13) / 2);
}

static Image gradient(int64_t h, int64_t w) {
  Image img(h, w, 3);
  for (int64_t i = 0; i < h * w * 3; ++i) img.pixels[i] = static_cast<uint8_t>(i % 251);
  return img;
}

TEST(RandomFlipAndCrop, RatesAndOffsetsAreUniform) {
  TransformSpec spec = cifar_train_transform();
  Transform t(spec);
  RawSample s;
  s.image = gradient(32, 32);
  int flips = 0;
  std::map<std::pair<int64_t, int64_t>, int> offsets;
  const int n = 8100;
  for (int i = 0; i < n; ++i) {
    s.index = i;
    // Replay the same draws: top, left, then the flip.
    SampleRng rng(7, RngStream::kAugment, 2, static_cast<uint64_t>(i));
    const auto top = static_cast<int64_t>(rng.below(9));
    const auto left = static_cast<int64_t>(rng.below(9));
    const bool flip = rng.uniform() < 0.5;
    flips += flip;
    ++offsets[{top, left}];
    Image expected = crop_with_zero_pad(s.image, top - 4, left - 4, 32, 32);
    if (flip) flip_horizontal(expected);
    if (i < 200) ASSERT_EQ(t.apply_uint8(s, 7, 2).pixels, expected.pixels) << i;
  }
  EXPECT_NEAR(static_cast<double>(flips) / n, 0.5, 0.02);  // sd 0.0056
  ASSERT_EQ(offsets.size(), 81u);
  for (const auto& [offset, count] : offsets) EXPECT_NEAR(count, 100, 45) << offset.first << "," << offset.second;
}

TEST(Transform, DeterministicPerSeedEpochIndex) {
  Transform t(imagenet_train_transform(64));
  RawSample s;
  s.image = gradient(120, 160);
  s.index = 5;
  const auto a = t.apply_uint8(s, 1, 0), b = t.apply_uint8(s, 1, 0), c = t.apply_uint8(s, 1, 1);
  EXPECT_EQ(a.pixels, b.pixels);
  EXPECT_NE(a.pixels, c.pixels);
  EXPECT_EQ(a.height, 64);
  EXPECT_EQ(a.width, 64);
}

struct Golden {
  Image input;
  int64_t c = 0, h = 0, w = 0;
  std::vector<float> output;
};

static bool read_golden(const std::string& path, Golden& g) {
  std::ifstream in(path, std::ios::binary);
  char magic[4];
  if (!in.read(magic, 4) || std::string(magic, 4) != "DPG1") return false;
  int64_t h, w;
  in.read(reinterpret_cast<char*>(&h), 8).read(reinterpret_cast<char*>(&w), 8);
  g.input = Image(h, w, 3);
  in.read(reinterpret_cast<char*>(g.input.pixels.data()), static_cast<std::streamsize>(g.input.pixels.size()));
  in.read(reinterpret_cast<char*>(&g.c), 8).read(reinterpret_cast<char*>(&g.h), 8).read(reinterpret_cast<char*>(&g.w), 8);
  g.output.resize(static_cast<size_t>(g.c * g.h * g.w));
  in.read(reinterpret_cast<char*>(g.output.data()), static_cast<std::streamsize>(g.output.size() * 4));
  return static_cast<bool>(in);
}

// Resize + CenterCrop + normalise against torchvision+PIL. Geometry is exact; pixel values
// differ because PIL's bilinear antialiases on reduction (triangle filter widened by the factor)
// while we use OpenCV INTER_LINEAR (reduction <= 2x) or INTER_AREA (> 2x). Bounds are mean
// absolute errors in [0, 1] pixel units (before normalisation), measured and rounded up:
//   enlargement: both are plain bilinear with the same pixel-centre convention -> < 0.5 grey level
//   1.5x reduction: INTER_LINEAR skips PIL's widened filter -> a few grey levels on texture
//   5x reduction: box (INTER_AREA) vs widened triangle -> a few grey levels
TEST(Transform, ResizeCenterCropMatchesTorchvisionWithinBounds) {
  const std::map<std::string, std::pair<std::array<int64_t, 3>, double>> cases = {
      // name -> ({resize_shorter, crop_h, crop_w}, MAE bound)
      {"resize_center_up.bin", {{56, 48, 40}, 1.0 / 255}},      // measured 0.23
      {"resize_center_mild.bin", {{64, 48, 48}, 4.0 / 255}},   // measured 3.0
      {"resize_center_strong.bin", {{24, 24, 24}, 2.0 / 255}},  // measured 1.15
  };
  for (const auto& [name, params] : cases) {
    Golden g;
    const std::string path = tu::source_dir() + "/tests/data/golden/" + name;
    ASSERT_TRUE(read_golden(path, g)) << "cannot read " << path
                                      << " (regenerate with /usr/bin/python3 scripts/make_data_goldens.py)";
    TransformSpec spec = imagenet_val_transform(params.first[0], params.first[1]);
    spec.width = params.first[2];
    Transform t(spec);
    RawSample s;
    s.image = g.input;
    std::vector<float> out(static_cast<size_t>(3 * spec.height * spec.width));
    t.apply(s, 0, 0, out.data());
    ASSERT_EQ(g.h, spec.height);
    ASSERT_EQ(g.w, spec.width);
    double mae = 0;
    const int64_t plane = g.h * g.w;
    for (size_t i = 0; i < out.size(); ++i)
      mae += std::abs(out[i] - g.output[i]) * spec.std[i / static_cast<size_t>(plane)];
    mae /= static_cast<double>(out.size());
    std::cout << name << ": MAE " << mae * 255 << " grey levels (bound " << params.second * 255 << ")\n";
    EXPECT_LE(mae, params.second) << name;
  }
}

// RandomResizedCrop on a JPEG decodes only the crop's window and resizes it in place; the result
// must be exactly what decoding the whole image (at the same DCT scale), cropping and resizing
// gives, and apply() (fused flip + normalise) must match normalize_to_chw(apply_uint8()).
TEST(Transform, RandomResizedCropOnJpegMatchesFullDecodePath) {
  // A textured 4:2:0 JPEG: smooth gradients plus a checkerboard so that misplaced windows show.
  cv::Mat bgr(333, 517, CV_8UC3);
  for (int y = 0; y < bgr.rows; ++y)
    for (int x = 0; x < bgr.cols; ++x)
      bgr.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>(x / 2), static_cast<uint8_t>(y * 3 / 4),
                                          static_cast<uint8_t>(((x / 7 + y / 5) % 2) * 200 + 20));
  std::vector<uint8_t> jpeg;
  ASSERT_TRUE(cv::imencode(".jpg", bgr, jpeg, {cv::IMWRITE_JPEG_QUALITY, 90}));
  for (const int64_t size : {int64_t{224}, int64_t{64}, int64_t{24}}) {  // 1/1 .. 1/8 DCT scales
    TransformSpec spec = imagenet_train_transform(size);
    Transform t(spec);
    for (int64_t index = 0; index < 40; ++index) {
      RawSample s;
      s.index = index;
      s.encoded = jpeg;
      s.source = "textured.jpg";
      SampleRng rng(3, RngStream::kAugment, 1, static_cast<uint64_t>(index));
      const CropBox box = random_resized_crop_box(333, 517, spec.scale, spec.ratio, rng);
      const bool flip = rng.uniform() < spec.flip_probability;
      DecodeOptions options;
      options.min_width = (size * 517 + box.width - 1) / box.width;
      options.min_height = (size * 333 + box.height - 1) / box.height;
      const Decoded full = decode_jpeg(jpeg.data(), jpeg.size(), options, "textured.jpg");
      const double sx = static_cast<double>(full.image.width) / 517.0, sy = static_cast<double>(full.image.height) / 333.0;
      auto scaled = [](int64_t v, double f) { return static_cast<int64_t>(std::llround(static_cast<double>(v) * f)); };
      const int64_t top = std::min(scaled(box.top, sy), full.image.height - 1);
      const int64_t left = std::min(scaled(box.left, sx), full.image.width - 1);
      const int64_t h = std::clamp<int64_t>(scaled(box.top + box.height, sy) - top, 1, full.image.height - top);
      const int64_t w = std::clamp<int64_t>(scaled(box.left + box.width, sx) - left, 1, full.image.width - left);
      Image expected = resize_bilinear(crop_with_zero_pad(full.image, top, left, h, w), size, size);
      if (flip) flip_horizontal(expected);
      const Image got = t.apply_uint8(s, 3, 1);
      ASSERT_EQ(got.height, size);
      ASSERT_EQ(got.width, size);
      EXPECT_EQ(got.pixels, expected.pixels) << "size " << size << " index " << index << " scale "
                                             << full.scale_num << "/" << full.scale_denom;
      std::vector<float> fused(static_cast<size_t>(3 * size * size)), reference(fused.size());
      t.apply(s, 3, 1, fused.data());
      normalize_to_chw(got, spec.mean, spec.std, reference.data());
      for (size_t i = 0; i < fused.size(); ++i) ASSERT_NEAR(fused[i], reference[i], 1e-5f) << i;
    }
  }
}
