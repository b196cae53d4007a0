// Decoding every image of ../shared/data/jpeg-testimages.tar: each either matches its lossless
// reference (PNG/PPM next to it) within a per-case mean-absolute-error bound, or fails with a
// dp::Error that names the file. Nothing may crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <set>

#include "data/file_io.h"
#include "data/image_ops.h"
#include "data/jpeg_decode.h"
#include "data/jpeg_markers.h"
#include "data_test_util.h"
#include "engine/error.h"

using namespace dp::data;
namespace fs = std::filesystem;

namespace {

// Extracted once per test process (about 0.3 s).
class JpegTestImages : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string data = tu::shared_data_dir();
    if (data.empty()) return;
    dir_ = new tu::TempDir();
    if (!tu::extract_tar(data + "/jpeg-testimages.tar", dir_->path())) {
      delete dir_;
      dir_ = nullptr;
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "../shared/data/jpeg-testimages.tar is absent: decoder tests skipped";
  }
  static std::string root() { return dir_->path(); }
  static tu::TempDir* dir_;
};
tu::TempDir* JpegTestImages::dir_ = nullptr;

// The reference beside a JPEG: same stem with .png/.ppm, dropping sub-extensions one at a time
// (video-001.q50.420.jpeg -> video-001.png), or name.jpg.ref.png.
std::string reference_for(const fs::path& jpeg) {
  if (fs::exists(jpeg.string() + ".ref.png")) return jpeg.string() + ".ref.png";
  std::string stem = jpeg.stem().string();
  while (true) {
    // .ppm first: libjpeg-turbo's testorig.ppm is testorig.jpg's reference, its testorig.png is not.
    for (const char* ext : {".ppm", ".png"}) {
      const fs::path candidate = jpeg.parent_path() / (stem + ext);
      if (fs::exists(candidate)) return candidate.string();
    }
    const size_t dot = stem.find_last_of('.');
    if (dot == std::string::npos) return "";
    stem = stem.substr(0, dot);
  }
}

double mean_abs_error(const Image& a, const Image& b) {
  double sum = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return sum / static_cast<double>(a.pixels.size());
}

bool is_gray(const Image& image) {
  for (size_t i = 0; i + 2 < image.pixels.size(); i += 3)
    if (image.pixels[i] != image.pixels[i + 1] || image.pixels[i] != image.pixels[i + 2]) return false;
  return true;
}

Image load_reference(const std::string& path) {
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  Image image(bgr.rows, bgr.cols, 3);
  for (int y = 0; y < bgr.rows; ++y)
    for (int x = 0; x < bgr.cols; ++x)
      for (int c = 0; c < 3; ++c) image.pixels[(y * bgr.cols + x) * 3 + c] = bgr.at<cv::Vec3b>(y, x)[2 - c];
  return image;
}

}  // namespace

// Files that must fail, with the reason.
const std::map<std::string, std::string> kMustFail = {
    {"CVE-2017-2862.jpg", "garbage in a progressive arithmetic scan"},
    {"bug775218.jpg", "garbage right after SOI"},
    {"bug775697.jpg", "garbage in the headers"},
    {"premature-end.jpg", "truncated"},
    {"partial_progressive.jpg", "truncated progressive scan"},
    {"issue205.jpg", "64250x64250 and truncated (decompression bomb)"},
    {"large.jpg", "22500x33300: over the 2^28-pixel guard"},
    {"monkey12.jpg", "12-bit precision"},
};

// Reference comparisons and their MAE bounds (grey levels of 255). Our decoder is libjpeg-turbo
// with the accurate IDCT and fancy upsampling, so against a reference made by the same library
// the error is 0; the references here were made by other decoders or are the lossless originals.
double mae_bound(const std::string& name) {
  // Lossy encodings compared with the lossless original (Go's test images: q50 variants).
  if (name.find(".q50.") != std::string::npos) return 8.0;
  // CMYK/YCCK: PIL/GIMP-style conversion differences of the reference; a few levels.
  if (name.find("cmyk") != std::string::npos || name.find("ycck") != std::string::npos) return 4.0;
  // Lossy JPEG in the RGB colour space (no YCbCr decorrelation) against the lossless original:
  // quantisation error of all three channels at full weight (measured 4.2).
  if (name.find(".rgb.") != std::string::npos) return 5.0;
  // libjxl's q85 encodings of flower.png against flower.png itself: pure encoding loss
  // (measured up to 2.3 for the luma-subsampled variant).
  if (name.find("flower.png.im_q85") != std::string::npos) return 3.0;
  return 2.0;  // standard cases: different IDCT/upsampling rounding only
}

TEST_F(JpegTestImages, EveryFileDecodesToItsReferenceOrFailsClearly) {
  int decoded = 0, compared = 0, failed = 0;
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(root())) {
    const std::string ext = entry.path().extension().string();
    if (entry.is_regular_file() && (ext == ".jpg" || ext == ".jpeg")) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 120u);
  for (const auto& path : files) {
    const std::string name = path.filename().string();
    const auto bytes = read_file_bytes(path.string());
    const bool lossless = path.string().find("/lossless/") != std::string::npos;
    try {
      const Decoded d = decode_image(bytes.data(), bytes.size(), {}, path.string());
      ++decoded;
      EXPECT_FALSE(kMustFail.count(name) || lossless) << name << " should have failed";
      ASSERT_EQ(d.image.channels, 3);
      ASSERT_EQ(d.image.pixels.size(), static_cast<size_t>(d.image.height * d.image.width * 3));
      const std::string ref = reference_for(path);
      if (ref.empty()) continue;
      const Image reference = load_reference(ref);
      if (reference.height != d.image.height || reference.width != d.image.width) continue;
      // A grayscale JPEG made from a colour original (flower.png.im_q85_gray.jpg) has no
      // colour reference to compare with.
      if (is_gray(d.image) && !is_gray(reference)) continue;
      ++compared;
      EXPECT_LE(mean_abs_error(d.image, reference), mae_bound(name)) << name << " vs " << ref;
    } catch (const dp::Error& e) {
      ++failed;
      EXPECT_TRUE(kMustFail.count(name) || lossless) << name << " failed: " << e.what();
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << "error does not name the file: " << e.what();
    }
  }
  std::cout << decoded << " decoded (" << compared << " compared with a reference), " << failed
            << " failed with dp::Error\n";
  EXPECT_GE(compared, 40);
}

TEST_F(JpegTestImages, TruncationIsAnErrorByDefault) {
  const std::string path = root() + "/gdk-pixbuf-tests/valid.1.jpeg";
  auto bytes = read_file_bytes(path);
  ASSERT_NO_THROW(decode_jpeg(bytes.data(), bytes.size(), {}, path));
  for (size_t keep : {bytes.size() / 2, bytes.size() - 200, size_t{200}, size_t{3}}) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(keep));
    EXPECT_THROW(decode_jpeg(cut.data(), cut.size(), {}, "cut.jpg"), dp::Error) << keep;
  }
  // With warnings ignored, a file cut inside the scan data still yields an image (grey rest).
  std::vector<uint8_t> half(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() / 2));
  DecodeOptions lenient;
  lenient.warnings = JpegWarnings::kIgnore;
  EXPECT_EQ(decode_jpeg(half.data(), half.size(), lenient, "half.jpg").image.width, 400);
}

TEST_F(JpegTestImages, CorruptBytesFailWithTheFileName) {
  const std::string path = root() + "/libjpeg-turbo/testimages/testorig.jpg";
  auto bytes = read_file_bytes(path);
  // Overwrite the quantisation/Huffman header area with garbage.
  for (size_t i = 20; i < 400 && i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 37);
  try {
    decode_jpeg(bytes.data(), bytes.size(), {}, "corrupt-testorig.jpg");
    // libjpeg may "recover" from some garbage; then it must at least have produced an image.
  } catch (const dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt-testorig.jpg"), std::string::npos);
  }
  std::vector<uint8_t> junk(1000, 0x42);
  EXPECT_THROW(decode_image(junk.data(), junk.size(), {}, "junk.bin"), dp::Error);
  EXPECT_THROW(decode_image(junk.data(), 0, {}, "empty.jpg"), dp::Error);
}

TEST_F(JpegTestImages, ExifOrientationOnlyWhenAsked) {
  const std::string dir = root() + "/golang-github-disintegration-imaging-dev/";
  const auto upright_bytes = read_file_bytes(dir + "orientation_0.jpg");
  const Image upright = decode_jpeg(upright_bytes.data(), upright_bytes.size(), {}, "o0").image;
  DecodeOptions rotate;
  rotate.apply_exif_orientation = true;
  for (int o = 1; o <= 8; ++o) {
    const std::string path = dir + "orientation_" + std::to_string(o) + ".jpg";
    const auto bytes = read_file_bytes(path);
    EXPECT_EQ(scan_jpeg_markers(bytes.data(), bytes.size()).exif_orientation, o);
    const Image raw = decode_jpeg(bytes.data(), bytes.size(), {}, path).image;
    EXPECT_EQ(raw.width, o >= 5 ? 70 : 50) << "no rotation by default";
    const Image fixed = decode_jpeg(bytes.data(), bytes.size(), rotate, path).image;
    ASSERT_EQ(fixed.height, upright.height) << o;
    ASSERT_EQ(fixed.width, upright.width) << o;
    EXPECT_LE(mean_abs_error(fixed, upright), 6.0) << "orientation " << o;
  }
}

TEST_F(JpegTestImages, DctScalingPicksTheSmallestCoveringFactor) {
  int num = 0, denom = 0;
  choose_dct_scale(2268, 1512, 224, 224, num, denom);
  // 1/8 gives 284x189, too small for 224; 1/4 (567x378) is the smallest that covers it.
  EXPECT_EQ(num * 4, denom);
  choose_dct_scale(300, 300, 224, 224, num, denom);
  EXPECT_EQ(num, denom) << "no reduction when the target is more than half the source";
  const std::string path = root() + "/libjxl-testdata/flower.png.im_q85_420.jpg";
  const auto bytes = read_file_bytes(path);
  DecodeOptions options;
  options.min_width = 500;
  options.min_height = 300;
  const Decoded d = decode_jpeg(bytes.data(), bytes.size(), options, path);
  EXPECT_EQ(d.full_width, 2268);
  EXPECT_GE(d.image.width, 500);
  EXPECT_GE(d.image.height, 300);
  EXPECT_LT(d.image.width, 1134);
}

// Decoding a window (libjpeg's jpeg_crop_scanline / jpeg_skip_scanlines, widened to iMCU
// boundaries plus a margin) must give exactly the pixels of a full decode at the same scale,
// for every layout in the corpus (sampling factors, progressive, greyscale, CMYK, restart
// intervals) and with EXIF orientation applied.
TEST_F(JpegTestImages, WindowDecodeMatchesFullDecode) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(root())) {
    const std::string ext = entry.path().extension().string();
    if (entry.is_regular_file() && (ext == ".jpg" || ext == ".jpeg")) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  int checked = 0;
  uint64_t state = 12345;
  auto next = [&](int64_t n) {  // small LCG: deterministic windows
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int64_t>((state >> 33) % static_cast<uint64_t>(n));
  };
  for (const auto& path : files) {
    const auto bytes = read_file_bytes(path.string());
    for (const bool orient : {false, true}) {
      for (const int64_t min_side : {int64_t{0}, int64_t{12}, int64_t{40}}) {
        DecodeOptions full_options;
        full_options.apply_exif_orientation = orient;
        full_options.min_width = full_options.min_height = min_side;
        Decoded full;
        try {
          full = decode_jpeg(bytes.data(), bytes.size(), full_options, path.string());
        } catch (const dp::Error&) {
          continue;  // files that must fail are covered above
        }
        ASSERT_EQ(full.offset_x, 0);
        ASSERT_EQ(full.image.width, full.scaled_width);
        for (int trial = 0; trial < 4; ++trial) {
          DecodeOptions options = full_options;
          const int64_t w = 1 + next(full.full_width), h = 1 + next(full.full_height);
          options.region = {next(full.full_width - w + 1), next(full.full_height - h + 1), w, h};
          const Decoded part = decode_jpeg(bytes.data(), bytes.size(), options, path.string());
          ASSERT_EQ(part.scaled_width, full.scaled_width) << path;
          ASSERT_EQ(part.scaled_height, full.scaled_height) << path;
          // The requested window, mapped to the decoded scale, must lie inside the result.
          const double sx = static_cast<double>(full.scaled_width) / static_cast<double>(full.full_width);
          const double sy = static_cast<double>(full.scaled_height) / static_cast<double>(full.full_height);
          const auto x0 = static_cast<int64_t>(std::floor(static_cast<double>(options.region.left) * sx));
          const auto y0 = static_cast<int64_t>(std::floor(static_cast<double>(options.region.top) * sy));
          const auto x1 = std::min<int64_t>(full.scaled_width, static_cast<int64_t>(std::ceil(static_cast<double>(options.region.left + w) * sx)));
          const auto y1 = std::min<int64_t>(full.scaled_height, static_cast<int64_t>(std::ceil(static_cast<double>(options.region.top + h) * sy)));
          ASSERT_LE(part.offset_x, x0) << path;
          ASSERT_LE(part.offset_y, y0) << path;
          ASSERT_GE(part.offset_x + part.image.width, x1) << path;
          ASSERT_GE(part.offset_y + part.image.height, y1) << path;
          int64_t mismatches = 0;
          for (int64_t y = y0; y < y1; ++y)
            mismatches += std::memcmp(full.image.row(y) + x0 * 3,
                                      part.image.row(y - part.offset_y) + (x0 - part.offset_x) * 3,
                                      static_cast<size_t>((x1 - x0) * 3)) != 0;
          EXPECT_EQ(mismatches, 0) << path << " orient " << orient << " scale " << part.scale_num << "/"
                                   << part.scale_denom << " window " << w << "x" << h << "+"
                                   << options.region.left << "+" << options.region.top;
          ++checked;
        }
      }
    }
  }
  EXPECT_GE(checked, 400);
}

// Only the rows above and in the window are needed, but a truncated file must still fail by
// default even when the window lies in its intact part.
TEST_F(JpegTestImages, TruncationBelowTheWindowIsStillAnError) {
  const std::string path = root() + "/gdk-pixbuf-tests/valid.1.jpeg";
  const auto bytes = read_file_bytes(path);
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() * 3 / 4));
  DecodeOptions options;
  options.region = {0, 0, 50, 20};  // top-left corner: its data is present
  ASSERT_NO_THROW(decode_jpeg(bytes.data(), bytes.size(), options, path));
  try {
    decode_jpeg(cut.data(), cut.size(), options, "cut-window.jpg");
    ADD_FAILURE() << "truncated file decoded";
  } catch (const dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut-window.jpg"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("remature end"), std::string::npos) << e.what();
  }
  options.warnings = JpegWarnings::kIgnore;
  EXPECT_NO_THROW(decode_jpeg(cut.data(), cut.size(), options, "cut-window.jpg"));
}

// Issue 13: a JPEG whose header reports a zero width or height (no SOF marker, or a SOF saying
// 0) passed the header read and divided by zero in the training transform (SIGFPE, even with
// data.bad_samples = "skip"). Dimensions are validated where the header is read.
TEST(JpegHeader, ZeroOrMissingDimensionsAreErrorsNamingTheFile) {
  const std::vector<unsigned char> good = tu::make_jpeg(24, 16);
  const JpegHeader h = read_jpeg_header(good.data(), good.size(), "good.jpg");
  EXPECT_EQ(h.width, 24);
  EXPECT_EQ(h.height, 16);
  const std::vector<std::pair<std::string, std::vector<unsigned char>>> bad = {
      {"no_sof.jpg", tu::jpeg_without_sof(good)},
      {"zero_width.jpg", tu::jpeg_with_sof_size(good, 0, 16)},
      {"zero_height.jpg", tu::jpeg_with_sof_size(good, 24, 0)},
      {"zero_both.jpg", tu::jpeg_with_sof_size(good, 0, 0)},
      {"tables_only.jpg", tu::jpeg_tables_only(good)},    // TurboJPEG reports success and no size
      {"soi_eoi.jpg", {0xFF, 0xD8, 0xFF, 0xD9}},
  };
  for (const auto& [name, bytes] : bad) {
    for (int step = 0; step < 2; ++step) {
      try {
        if (step == 0)
          read_jpeg_header(bytes.data(), bytes.size(), name);
        else
          decode_image(bytes.data(), bytes.size(), DecodeOptions{}, name);
        ADD_FAILURE() << name << " accepted (step " << step << ")";
      } catch (const dp::Error& e) {
        EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      }
    }
  }
}
